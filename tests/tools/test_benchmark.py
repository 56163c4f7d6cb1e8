"""`mae-transfer benchmark TASK`: one dispatcher over the task modules, each on the shared harness."""
import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from mae_transfer.tools import benchmark
from mae_transfer.tools.benchmark import backbone, seg
from mae_transfer.utils.benchmarking import add_common_arguments, child_arguments

REPO = Path(__file__).resolve().parents[2]
TINY_SEG = 'seg/upernet_vit-tiny-p16_1xb8-200i_synthetic-128x128.py'


@pytest.mark.parametrize('task', benchmark.TASKS)
def test_every_task_has_its_options_and_examples(task, capsys):
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main([task, '--help'])
    assert exit_info.value.code == 0
    assert f'mae-transfer benchmark {task}' in capsys.readouterr().out


def test_unknown_task_is_refused_with_the_list():
    with pytest.raises(SystemExit, match="unknown benchmark task 'dett'.*det, seg"):
        benchmark.main(['dett'])


def test_a_tasks_own_full_options_reach_the_child_process():
    parser = argparse.ArgumentParser()
    add_common_arguments(parser, batch=8, steps=2)
    parser.add_argument('--img-size', type=int, default=224)
    args = parser.parse_args(['full', '--img-size', '64'])
    argv = child_arguments(benchmark.child_command('cls'), args, 'cls/x.py', dict(img_size=args.img_size, other=None))
    assert argv[:4] == ['-m', 'mae_transfer.tools.benchmark', 'cls', 'full']
    child = parser.parse_args(argv[3:])
    assert (child.single, child.config, child.batch, child.steps, child.img_size) == (True, 'cls/x.py', 8, 2, 64)


def test_benchmark_backbone_mode_on_tiny_settings():
    args = argparse.Namespace(arch='base', img_size=None, batch=None, window_size=14, global_attn_indexes=None,
                              out_indices=[3, 5, 7, 11], drop_path=0.1, rel_pos_impl='fold')
    window = backbone.backbone_spec('vitdet-window', True, args)  # the full-size recipes, not run here
    assert (window['img_size'], window['batch'], window['options']['window_size'], window['options']['with_cp'],
            window['options']['global_attn_indexes']) == (1024, 1, 14, True, [2, 5, 8, 11])
    upernet = backbone.backbone_spec('upernet', False, args)
    assert (upernet['img_size'], upernet['batch'], upernet['options']['out_indices']) == (512, 2, [3, 5, 7, 11])
    assert not upernet['options']['use_rel_pos'] and backbone.backbone_spec('vitdet-global', False, args)[
        'options']['use_rel_pos']

    result = subprocess.run([sys.executable, 'tools/benchmark.py', 'backbone', '--arch', 'tiny', '--img-size', '40',
                             '--window-size', '2', '--global-attn-indexes', '1', '--settings', 'vitdet-window',
                             '--cp', 'on'], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    row = [line.split() for line in result.stdout.splitlines() if line.split()[:1] == ['vitdet-window']][-1]
    assert row[:4] == ['vitdet-window', '1', '40', 'on'] and float(row[6]) > 0 and float(row[7]) > 0
    assert row[-1] == 'ours'  # with_cp on only: no reference measured (references run with_cp off)


def test_seg_full_step_measures_a_training_forward_backward():
    result = seg.full_step(TINY_SEG, batch=2, steps=1)  # BN needs 2
    assert result['config'] == TINY_SEG
    assert result['crop'] == (128, 128) and len(result['step_s']) == 1 and result['step_s'][0] > 0
    assert 1 < result['params_m'] < 10 and result['backbone_params_m'] < result['params_m']
    assert result['peak_mem_mib'] >= result['before_step_mem_mib'] > 0


def test_pose_full_step_times_training_and_both_predict_paths():
    from mae_transfer.tools.benchmark import pose
    result = pose.full_step(pose.TINY_CONFIG, batch=1, steps=1, forward_batch=2, compile='eager')  # dynamo traces
    assert (result['input'], result['train_batch'], result['forward_batch']) == ('128x96', 1, 2)
    assert result['compile'] == 'eager' and result['first_train_step_s'] > 0 and result['first_predict_s'] > 0
    assert result['train_crops_per_s'] > 0 and result['flip_crops_per_s'] > 0 and result['plain_crops_per_s'] > 0
    from mae_transfer.utils.configs import load_config
    flip_test = load_config(pose.TINY_CONFIG).model.get('test_cfg', {}).get('flip_test', True)
    assert result['config_flip_test'] == flip_test and result['peak_mem_gb'] > 0


def test_pretrain_measure_reports_the_bound_and_the_gemm_ceiling():
    from mae_transfer.tools.benchmark import pretrain
    result = pretrain.measure('tiny', batch=2, img_size=32, mask_ratio=0.5, dtype='fp32', iters=1, warmup=0,
                              threads=0, profile=False)
    assert result['img_per_s'] > 0 and result['step_s'] > 0 and result['gemm_gflop_per_img'] > 0
    # ratios against the same bound: the step's, and that of its products timed alone
    assert result['of_bound'] == pytest.approx(result['img_per_s'] / result['bound_img_per_s'])
    assert result['ceiling'] == pytest.approx(2 / result['gemm_s'] / result['bound_img_per_s'])
    assert 0 < result['gemm_s'] and 0 < result['ceiling']
