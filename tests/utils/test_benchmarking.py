"""The benchmark harness (mae_transfer/utils/benchmarking.py) on toy models: fast, no OpenMMLab task model."""
import argparse
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.registry import DATASETS, METRICS, MODELS
from torch.utils.data import Dataset

from mae_transfer.utils.benchmarking import (FreshProcessError, add_common_arguments, child_arguments, learning_check,
                                             print_before_after, run_in_fresh_process, run_task_benchmark,
                                             time_training_steps)


def test_time_training_steps_times_each_step_and_drops_gradients():
    model = torch.nn.Linear(8, 2)
    inputs = torch.randn(4, 8)
    dtypes = []

    def compute_loss() -> torch.Tensor:
        out = model(inputs)
        dtypes.append(out.dtype)
        return out.square().mean()

    cost = time_training_steps(model, compute_loss, steps=3)
    assert len(cost['step_s']) == 3 and all(t > 0 for t in cost['step_s'])
    assert cost['peak_mem_mib'] >= cost['before_step_mem_mib'] > 0
    assert all(p.grad is None for p in model.parameters())  # no gradient left over from the last step
    assert dtypes == [torch.float32] * 3

    time_training_steps(model, compute_loss, steps=1, amp=True)
    assert dtypes[-1] == torch.bfloat16  # the forward pass ran under bf16 autocast


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / 'child.py'
    path.write_text('import sys\n' + body)
    return path


def test_run_in_fresh_process_returns_the_last_json_line(tmp_path, capsys):
    script = _script(tmp_path, "print('building...')\nprint('{\"pid_differs\": 1}')\nprint('x', file=sys.stderr)\n"
                               "print('{\"step_s\": [0.5], \"arg\": \"%s\"}' % sys.argv[1])\n")
    assert run_in_fresh_process([script, 'hello']) == {'step_s': [0.5], 'arg': 'hello'}
    assert capsys.readouterr().err == ''  # the child's stderr stays hidden by default
    run_in_fresh_process([script, 'again'], show_stderr=True)
    assert capsys.readouterr().err == 'x\n'


def test_run_in_fresh_process_reports_the_childs_stderr(tmp_path):
    failing = _script(tmp_path, "print('{}')\nprint('out of memory here', file=sys.stderr)\nsys.exit(3)\n")
    with pytest.raises(FreshProcessError, match='(?s)status 3.*out of memory here') as error:
        run_in_fresh_process([failing])
    assert 'out of memory here' in error.value.stderr

    no_json = _script(tmp_path, "print('done, but no result')\n")
    with pytest.raises(FreshProcessError, match='no JSON'):
        run_in_fresh_process([no_json])


def test_child_arguments_round_trip_through_the_common_parser():
    parser = argparse.ArgumentParser()
    add_common_arguments(parser, batch=2, steps=5, data_root='data/x')
    args = parser.parse_args(['full', '--batch', '3', '--amp', '--threads', '1'])
    assert (args.mode, args.batch, args.steps, args.amp, args.single, args.data_root) == ('full', 3, 5, True, False,
                                                                                         'data/x')
    argv = child_arguments('tools/some_benchmark.py', args, 'configs/c.py')
    assert argv[0] == 'tools/some_benchmark.py'
    child = parser.parse_args(argv[1:])
    assert (child.mode, child.single, child.config, child.batch, child.steps, child.amp, child.threads) == (
        'full', True, 'configs/c.py', 3, 5, True, 1)
    assert not parser.parse_args(child_arguments('s.py', parser.parse_args(['full']), 'c.py')[1:]).amp


def test_run_task_benchmark_dispatches_tiny_and_the_child(capsys):
    calls = []

    def run(*argv: str) -> None:
        run_task_benchmark('unused.py', 'doc', 2, ('tiny.py', 'full.py'),
                           tiny_check=lambda *a: calls.append(('tiny', a)) or dict(metric=1.0),
                           full_step=lambda *a: calls.append(('full', a)) or dict(step_s=[0.5]),
                           print_tiny=lambda result: print('tiny', result), print_full=print, argv=argv)

    run('tiny', '--iters', '3', '--pretrained', 'mae.pth')
    assert calls == [('tiny', ('tiny.py', None, None, 3, 'mae.pth'))]
    assert capsys.readouterr().out == "tiny {'metric': 1.0}\n"
    run('full', '--single', '--amp', '--config', 'other.py')  # what the parent starts in the child process
    assert calls[1] == ('full', ('other.py', 2, True, 1))
    assert capsys.readouterr().out == '{"step_s": [0.5]}\n'


# Registered by name in mmengine's root registries: the Runner writes its config out as text.
@DATASETS.register_module(name='BenchmarkingTestPoints', force=True)
class _Points(Dataset):
    """y = 3 x + 1 with a little noise."""

    def __init__(self, num: int = 64):
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(num, 1, generator=generator)
        self.y = 3 * self.x + 1 + 0.01 * torch.randn(num, 1, generator=generator)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict:
        return dict(inputs=self.x[index], target=self.y[index])


@MODELS.register_module(name='BenchmarkingTestRegressor', force=True)
class _Regressor(BaseModel):
    def __init__(self, backbone: dict = None):
        super().__init__()
        self.backbone = backbone  # the config's backbone options; set_pretrained writes init_cfg there
        self.fc = torch.nn.Linear(1, 1)

    def init_weights(self) -> None:
        torch.nn.init.zeros_(self.fc.weight)
        torch.nn.init.zeros_(self.fc.bias)

    def forward(self, inputs, target, mode='tensor'):
        out = self.fc(inputs)
        if mode == 'loss':
            return dict(loss=(out - target).square().mean())
        return [dict(pred=p, target=t) for p, t in zip(out, target)]


@METRICS.register_module(name='BenchmarkingTestMSE', force=True)
class _MSE(BaseMetric):
    default_prefix = 'toy'

    def process(self, data_batch, data_samples) -> None:
        self.results.extend(float((s['pred'] - s['target']).square().sum()) for s in data_samples)

    def compute_metrics(self, results) -> dict:
        return dict(mse=sum(results) / len(results))


def test_learning_check_evaluates_trains_and_evaluates_again(tmp_path):
    loader = dict(dataset=dict(type='BenchmarkingTestPoints'), batch_size=8, num_workers=0,
                  collate_fn=dict(type='default_collate'))
    cfg = Config(dict(
        model=dict(type='BenchmarkingTestRegressor',
                   backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='missing.pth'))),
        train_dataloader=dict(loader, sampler=dict(type='InfiniteSampler', shuffle=True)),
        val_dataloader=dict(loader, sampler=dict(type='DefaultSampler', shuffle=False)), val_cfg=dict(),
        val_evaluator=dict(type='BenchmarkingTestMSE'),
        test_dataloader=dict(loader, sampler=dict(type='DefaultSampler', shuffle=False)), test_cfg=dict(),
        test_evaluator=dict(type='BenchmarkingTestMSE'), default_scope='mmengine',
        train_cfg=dict(by_epoch=False, max_iters=1000, val_interval=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1000),
                           logger=dict(type='LoggerHook', interval=10)),
        log_processor=dict(by_epoch=False)))

    result = learning_check(cfg, dict(mse='toy/mse'), iters=40, work_dir=str(tmp_path / 'work'))
    assert cfg.model.backbone.init_cfg is None  # no --pretrained: random (here: zero) initialisation
    assert cfg.val_dataloader is None  # no validation inside the timed training
    assert result['before']['mse'] > 5  # zero weights predict 0 for y = 3 x + 1
    assert result['after']['mse'] < 0.1 * result['before']['mse']
    assert (result['iters'], result['batch']) == (40, 8)
    assert result['train_s'] > 0 and result['s_per_iter'] == pytest.approx(result['train_s'] / 40)
    assert (tmp_path / 'work' / 'iter_40.pth').is_file()  # the checkpoint at the end of the shortened run


def test_print_before_after_lines(capsys):
    result = dict(config='configs/x.py', pretrained='none (random)', iters=3, batch=2, threads=1,
                  before=dict(mIoU=1.234, aAcc=50.0), after=dict(mIoU=12.5, aAcc=75.25), train_s=6.0, s_per_iter=2.0,
                  cpu_s_per_iter=1.5, work_dir='/tmp/w')
    print_before_after(result, width=7, digits=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == 'tiny twin configs/x.py (pretrained: none (random)), 3 iterations of batch 2, 1 torch threads'
    assert lines[1].split() == ['mIoU', 'aAcc'] and lines[2].split() == ['before', '1.23', '50.00']
    assert lines[3] == '     after   12.50   75.25'
    assert lines[4] == 'training: 2.000 s/iter wall, 1.500 s/iter CPU of the main process; logs in /tmp/w'
    print_before_after(result, width=7, digits=2, total=True)
    assert capsys.readouterr().out.splitlines()[4].startswith('training: 6 s, 2.000 s/iter wall')


if __name__ == '__main__':
    sys.exit(pytest.main([__file__, '-q']))
