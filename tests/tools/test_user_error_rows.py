"""The mistakes a new user made that ended in tracebacks: each now ends with one line
`mae-transfer COMMAND: error: ...` and exit status 2, before any model or dataset is built where it can be."""
import os
import stat
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from mae_transfer.engine.batch_fit import fit_batch_to_image_folder
from mae_transfer.models import MAEPretrainer
from mae_transfer.models.mae import mae_vit_small_patch16
from mae_transfer.tools import convert, export, infer, plan, test, train
from mae_transfer.utils.config_checks import ConfigValueError, check_config_values
from mae_transfer.utils.configs import CONFIG_ROOT, build_model
from mae_transfer.utils.user_errors import run_command

TINY_PRETRAIN = 'pretrain/mae_vit-tiny-p16_1xb32-coslr-50e_synthetic-128x128.py'
TINY_DET = 'det/mask-rcnn_vit-tiny-p16_1xb4-lsj-600i_synthetic-128x128.py'
TINY_CLS = 'cls/ft_vit-tiny-p16_1xb32-600i_synthetic-64x64.py'


def run(main, command, argv, capsys):
    """(exit status, stderr lines) of `mae-transfer COMMAND argv` as a process would end."""
    with pytest.raises(SystemExit) as exit_info:
        run_command(main, f'mae-transfer {command}', argv)
    return exit_info.value.code, capsys.readouterr().err.strip().splitlines()


def one_error_line(lines, command):
    """The command's error is the last stderr line, and the only one that says error."""
    assert lines and lines[-1].startswith(f'mae-transfer {command}: error: '), lines[-3:]
    assert not any('Traceback' in line for line in lines)
    return lines[-1]


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp('rows')
    torch.save({'state_dict': build_model(str(CONFIG_ROOT / TINY_DET)).state_dict(), 'meta': {}}, root / 'det.pth')
    encoder = {k: v for k, v in mae_vit_small_patch16(img_size=224).state_dict().items()
               if not k.startswith(('decoder', 'mask_token'))}
    torch.save({'model': encoder}, root / 'mae_pretrain_vit_small.pth')  # another size than the tiny configs'
    torch.save({'state_dict': MAEPretrainer(arch='tiny', img_size=128).state_dict()}, root / 'mae_tiny.pth')
    image = root / 'a.png'
    from PIL import Image
    Image.new('RGB', (96, 128), (90, 120, 30)).save(image)
    return root


@pytest.mark.parametrize('value, expected', [('eight', "train_dataloader.batch_size is 'eight', expected a whole "
                                                        'number >= 1'),
                                             ('-4', 'train_dataloader.batch_size is -4, expected a whole number')])
def test_bad_batch_size_from_cfg_options(value, expected, tmp_path, capsys):
    status, lines = run(train.main, 'train', [TINY_PRETRAIN, '--work-dir', str(tmp_path), '--cfg-options',
                                              f'train_dataloader.batch_size={value}'], capsys)
    assert status == 2 and expected in one_error_line(lines, 'train')


def test_every_rule_is_checked_before_anything_is_built():
    cfg = Config(dict(train_dataloader=dict(batch_size=2, num_workers=-1), optim_wrapper=dict(optimizer=dict(lr=0)),
                      train_cfg=dict(max_iters=2.5)))
    with pytest.raises(ConfigValueError) as error:
        check_config_values(cfg, 'my.py')
    assert str(error.value).startswith('my.py: train_dataloader.num_workers is -1, expected a whole number >= 0; '
                                       'optim_wrapper.optimizer.lr is 0, expected a number > 0; train_cfg.max_iters')


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes into read-only folders')
def test_read_only_work_dir_and_export_out(tmp_path, files, capsys):
    locked = tmp_path / 'locked'
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    status, lines = run(train.main, 'train', [TINY_PRETRAIN, '--work-dir', str(locked / 'work')], capsys)
    assert status == 2 and 'cannot write to the work dir' in one_error_line(lines, 'train')


def test_unwritable_work_dir_and_export_out(tmp_path, files, capsys):
    """A path under a regular file cannot be a folder: the same one line as a read-only file system (root
    writes into read-only folders, so that case is tested as the user would meet it only when not root)."""
    blocker = tmp_path / 'a_file'
    blocker.write_text('')
    status, lines = run(train.main, 'train', [TINY_PRETRAIN, '--work-dir', str(blocker / 'work')], capsys)
    assert status == 2 and f'cannot write to the work dir {blocker / "work"}' in one_error_line(lines, 'train')
    status, lines = run(export.main, 'export', [TINY_DET, str(files / 'det.pth'), '--out',
                                                str(blocker / 'x.onnx')], capsys)
    assert status == 2 and 'cannot write to the folder of --out' in one_error_line(lines, 'export')


def test_checkpoint_of_another_size_names_both_sizes(files, tmp_path, capsys):
    status, lines = run(infer.main, 'infer', [TINY_DET, str(files / 'mae_pretrain_vit_small.pth'),
                                              str(files / 'a.png'), '--out-dir', str(tmp_path)], capsys)
    line = one_error_line(lines, 'infer')
    assert status == 2 and 'ViT small (384-d x 12 blocks' in line and 'ViT 192-d x 4 blocks' in line


def test_checkpoint_of_another_task_names_what_it_holds(files, tmp_path, capsys):
    for main, command, extra in ((infer.main, 'infer', [str(files / 'a.png'), '--out-dir', str(tmp_path)]),
                                 (export.main, 'export', ['--out', str(tmp_path / 'x.onnx')])):
        status, lines = run(main, command, [TINY_CLS, str(files / 'det.pth'), *extra], capsys)
        line = one_error_line(lines, command)
        assert status == 2 and 'leaves fc_norm, head of the ViTClassifier' in line
        assert 'it holds neck, roi_head.bbox_head, roi_head.mask_head, rpn_head instead' in line
    status, lines = run(infer.main, 'infer', [TINY_DET, str(files / 'mae_tiny.pth'), str(files / 'a.png'),
                                              '--out-dir', str(tmp_path)], capsys)
    assert status == 2 and 'leaves backbone, neck' in one_error_line(lines, 'infer')
    assert not any('UserWarning' in line for line in lines)  # mmdet's "checkpoint is None" warning is ours to keep


def test_plan_memory_and_export_options(files, capsys):
    status, lines = run(plan.main, 'plan', [TINY_DET, '--gpu-memory', 'lots'], capsys)
    assert status == 2 and "--gpu-memory: cannot read the memory 'lots'" in one_error_line(lines, 'plan')
    status, lines = run(export.main, 'export', [TINY_DET, str(files / 'det.pth'), '--opset', '99'], capsys)
    assert status == 2 and 'opset 99: the torchscript exporter writes opsets 14 to' in one_error_line(lines, 'export')
    status, lines = run(export.main, 'export', [TINY_DET, str(files / 'det.pth'), '--input-size', '100', '0'],
                        capsys)
    assert status == 2 and '--input-size 100 0: give HEIGHT WIDTH' in one_error_line(lines, 'export')


def test_convert_of_a_missing_file_has_the_command_prefix(tmp_path, capsys):
    status, lines = run(convert.main, 'convert', [str(tmp_path / 'nonexist.pth'), str(tmp_path / 'out.pth')], capsys)
    assert status == 2 and lines == [f'mae-transfer convert: error: checkpoint {tmp_path / "nonexist.pth"} does '
                                     'not exist']


def test_a_test_on_a_pretraining_checkpoint_is_refused(files, capsys):
    status, lines = run(test.main, 'test', [TINY_DET, str(files / 'mae_tiny.pth')], capsys)
    assert status == 2 and 'leaves backbone, neck' in one_error_line(lines, 'test') or \
        'does not exist' in lines[-1]  # without the synthetic set the data is named first; both are one line


def test_the_error_is_the_first_stderr_line_of_an_mmdet_command(tmp_path):
    """No dependency warning before the error: run as a user would, in a fresh interpreter."""
    import subprocess
    import sys
    result = subprocess.run([sys.executable, '-m', 'mae_transfer.cli', 'convert', str(tmp_path / 'x.pth'),
                             str(tmp_path / 'y.pth')], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and result.stderr.splitlines()[0].startswith('mae-transfer convert: error: ')


@pytest.mark.parametrize('count, batch', [(10, 10), (1, 1)])
def test_pretraining_on_a_folder_smaller_than_the_batch(count, batch, tmp_path):
    from PIL import Image
    for index in range(count):
        Image.new('RGB', (40, 40)).save(tmp_path / f'{index}.png')
    cfg = Config.fromfile(str(CONFIG_ROOT / TINY_PRETRAIN))
    cfg.train_dataloader.dataset.data_root = str(tmp_path)
    cfg.auto_scale_lr.enable = False
    lr = cfg.optim_wrapper.optimizer.lr
    assert fit_batch_to_image_folder(cfg) == batch and cfg.train_dataloader.batch_size == batch
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(lr * batch / 32)


def test_pretraining_on_an_empty_folder_is_one_line(tmp_path):
    cfg = Config.fromfile(str(CONFIG_ROOT / TINY_PRETRAIN))
    cfg.train_dataloader.dataset.data_root = str(tmp_path)
    with pytest.raises(FileNotFoundError, match='no images'):  # a user error: one line, status 2
        fit_batch_to_image_folder(cfg)
