"""Faults a user causes end a command with one line `mae-transfer COMMAND: error: ...` and exit status 2; a bug keeps
its traceback; --debug / MAE_TRANSFER_DEBUG=1 show the traceback of a user's fault; --cfg-options refuses unknown
keys with the closest ones. Run in-process through `run_command`, the function of every process entry."""
import runpy
import sys
from typing import Callable, List, Tuple

import pytest
import torch
from mmengine.config import Config

from mae_transfer import cli
from mae_transfer.tools import convert, infer, test, train
from mae_transfer.utils.configs import CONFIG_ROOT, UnknownConfigKeyError, merge_cfg_options
from mae_transfer.utils.user_errors import run_command
from helpers.paths import REPO

TINY_PRETRAIN = 'pretrain/mae_vit-tiny-p16_1xb32-coslr-50e_synthetic-128x128.py'
TINY_CLS = 'cls/ft_vit-tiny-p16_1xb32-600i_synthetic-64x64.py'
TINY_POSE = 'pose/heatmap_vit-tiny-p16_1xb32-300i_synthetic-128x96.py'


def run(main: Callable, command: str, argv: List[str], capsys) -> Tuple[int, str]:
    """(exit status, stderr) of `mae-transfer COMMAND argv` as a process would end."""
    with pytest.raises(SystemExit) as exit_info:
        run_command(main, f'mae-transfer {command}', argv)
    return exit_info.value.code, capsys.readouterr().err


def test_missing_config_is_one_line_and_status_2(capsys):
    status, err = run(train.main, 'train', ['det/mask-rcnn_vit-tiny-p16_1xb4-lsj-600i_synthetic-128.py'], capsys)
    assert status == 2 and 'Traceback' not in err
    assert err.startswith('mae-transfer train: error: config not found: det/mask-rcnn_vit-tiny-p16_1xb4-lsj-600i_')
    assert 'det/mask-rcnn_vit-tiny-p16_1xb4-lsj-600i_synthetic-128x128.py' in err  # the close match


def test_missing_checkpoint_and_a_missing_file_raised_deep_inside(tmp_path, capsys):
    status, err = run(test.main, 'test', [TINY_CLS, str(tmp_path / 'iter_600.pth')], capsys)
    assert status == 2 and err == f'mae-transfer test: error: file not found: {tmp_path / "iter_600.pth"}\n'

    def reads_a_data_root(argv):  # what a dataset does with a data_root that does not exist
        open(tmp_path / 'data' / 'annotations.json')
    status, err = run(reads_a_data_root, 'train', [], capsys)
    missing = tmp_path / 'data' / 'annotations.json'
    assert status == 2 and err == f'mae-transfer train: error: No such file or directory: {missing}\n'


def test_misspelt_model_type_names_the_close_registered_one(tmp_path, capsys):
    config = tmp_path / 'typo.py'
    config.write_text(f"_base_ = ['{CONFIG_ROOT / TINY_CLS}']\nmodel = dict(type='mae_transfer.ViTClasifier')\n")
    status, err = run(train.main, 'train', [str(config), '--work-dir', str(tmp_path / 'work')], capsys)
    line = err.strip().splitlines()[-1]  # the Runner logs its environment first
    assert status == 2 and line.startswith(f"mae-transfer train: error: {config}: 'mae_transfer.ViTClasifier' is not ")
    assert line.endswith('did you mean mae_transfer.ViTClassifier?') and 'Traceback' not in err


def test_unknown_checkpoint_format_in_convert_and_in_infer(tmp_path, capsys):
    resnet = tmp_path / 'resnet.pth'
    torch.save({'conv1.weight': torch.ones(2, 3, 3, 3)}, resnet)
    status, err = run(convert.main, 'convert', [str(resnet), str(tmp_path / 'out.pth')], capsys)
    assert status == 2 and 'cannot identify' in err and not (tmp_path / 'out.pth').exists()
    image = tmp_path / 'a.png'
    image.write_bytes(b'')
    status, err = run(infer.main, 'infer', [TINY_CLS, str(resnet), str(image), '--out-dir', str(tmp_path)], capsys)
    assert status == 2 and err.startswith('mae-transfer infer: error: ') and 'cannot identify this checkpoint' in err
    assert err.count('the given checkpoint') <= 1  # named once, not once per loading layer


def test_corrupt_checkpoint_given_to_infer_is_one_line(tmp_path, capsys):
    truncated = tmp_path / 'epoch_12.pth'
    truncated.write_bytes(b'not a checkpoint')  # what an interrupted copy or an HTML error page leaves
    image = tmp_path / 'a.png'
    image.write_bytes(b'')
    status, err = run(infer.main, 'infer', [TINY_CLS, str(truncated), str(image), '--out-dir', str(tmp_path)],
                      capsys)
    assert status == 2 and 'Traceback' not in err and len(err.strip().splitlines()) == 1
    assert err.startswith(f'mae-transfer infer: error: {truncated} (16 bytes) is not a readable PyTorch checkpoint')
    assert 'Check the documentation' not in err  # torch's generic advice is cut


def test_misspelt_zoo_name_in_download_names_the_close_one(capsys):
    from mae_transfer.tools import download
    status, err = run(download.main, 'download', ['mae_pretrain_vit_bse'], capsys)
    assert status == 2 and err.startswith("mae-transfer download: error: unknown checkpoint 'mae_pretrain_vit_bse'; "
                                          'did you mean mae_pretrain_vit_base?')


def test_undecodable_image_and_video_given_to_infer(tmp_path, capsys):
    from mae_transfer.apis import init_model
    checkpoint = tmp_path / 'cls.pth'
    torch.save({'state_dict': init_model(CONFIG_ROOT / TINY_CLS).state_dict()}, checkpoint)
    image = tmp_path / 'photo.jpg'
    image.write_bytes(b'not a jpeg')
    status, err = run(infer.main, 'infer', [TINY_CLS, str(checkpoint), str(image), '--out-dir', str(tmp_path / 'o')],
                      capsys)
    assert status == 2 and err.splitlines()[-1].startswith(f'mae-transfer infer: error: cannot read image {image}')

    clip = tmp_path / 'clip.mp4'
    clip.write_bytes(b'\x00\x00\x00\x18ftypisom' + bytes(range(256)) * 4)  # a header, then no 'moov' index
    pose = tmp_path / 'pose.pth'
    torch.save({'state_dict': init_model(CONFIG_ROOT / TINY_POSE).state_dict()}, pose)  # the video is the fault here
    status, err = run(infer.main, 'infer', [TINY_POSE, str(pose), str(clip), '--out-dir', str(tmp_path / 'o')],
                      capsys)
    assert status == 2 and err.splitlines()[-1].startswith(f'mae-transfer infer: error: cannot open video {clip}')
    assert 'record it again' in err  # the fix for a file cut before its index


def test_cfg_options_typo_names_the_closest_key(capsys):
    argv = [TINY_PRETRAIN, '--cfg-options', 'train_dataloader.batchsize=2']
    status, err = run(train.main, 'train', argv, capsys)
    assert status == 2 and err == ('mae-transfer train: error: --cfg-options train_dataloader.batchsize: no such key '
                                   'in train_dataloader; did you mean train_dataloader.batch_size? to add a new key '
                                   'on purpose, write +train_dataloader.batchsize=...\n')


def test_cfg_options_plus_adds_a_key_and_lists_and_replaced_dicts_are_indexed():
    cfg = Config(dict(model=dict(backbone=dict(arch='tiny')), custom_hooks=[dict(type='A', interval=1)]))
    # a new dict, then a key under it: the options themselves define that part of the tree
    merge_cfg_options(cfg, {'+model.backbone.new_arg': 1, 'custom_hooks.0.interval': 2,
                            '+model.neck': dict(type='N'), 'model.neck.depth': 3})
    assert cfg.model.backbone.new_arg == 1 and cfg.custom_hooks[0].interval == 2
    assert cfg.model.neck == dict(type='N', depth=3)
    with pytest.raises(UnknownConfigKeyError, match=r'model.backbone.new_arg: no such key in model.backbone; to add'):
        merge_cfg_options(Config(dict(model=dict(backbone=dict(arch='tiny')))), {'model.backbone.new_arg': 1})
    with pytest.raises(UnknownConfigKeyError, match=r'custom_hooks is a list of 1 items: index it with 0..0'):
        merge_cfg_options(cfg, {'custom_hooks.1.interval': 2})
    with pytest.raises(UnknownConfigKeyError, match=r'no such key in the config; did you mean model.backbone.arch,'):
        merge_cfg_options(cfg, {'modl.backbone.arch': 'base'})
    assert cfg.model.backbone.arch == 'tiny'  # nothing merged from a refused set


def test_debug_flag_and_variable_show_the_traceback_a_bug_keeps_it(capsys, monkeypatch):
    status, err = run(train.main, 'train', ['nope.py', '--debug'], capsys)
    assert status == 2 and 'Traceback' in err and 'ConfigNotFoundError' in err
    assert err.rstrip().splitlines()[-1].startswith('mae-transfer train: error: config not found: nope.py')
    monkeypatch.setenv('MAE_TRANSFER_DEBUG', '1')
    assert 'Traceback' in run(train.main, 'train', ['nope.py'], capsys)[1]
    monkeypatch.delenv('MAE_TRANSFER_DEBUG')
    with pytest.raises(ZeroDivisionError):
        run_command(lambda argv: 1 / 0, 'mae-transfer train', [])
    assert run(train.main, 'train', ['--help'], capsys)[0] == 0


@pytest.mark.filterwarnings('ignore:.*found in sys.modules:RuntimeWarning')  # runpy of an imported module
def test_entry_points_exit_2_script_module_and_console_command(monkeypatch, capsys):
    # in this process, as `python tools/train.py`, `python -m mae_transfer.tools.train` and `mae-transfer` start:
    # a subprocess would spend seconds importing torch and mmengine again
    for entry in ('tools/train.py', 'mae_transfer.tools.train'):
        monkeypatch.setattr(sys, 'argv', [entry, 'nope.py'])
        with pytest.raises(SystemExit) as exit_info:
            if entry.endswith('.py'):
                runpy.run_path(str(REPO / entry), run_name='__main__')
            else:
                runpy.run_module(entry, run_name='__main__', alter_sys=False)
        assert exit_info.value.code == 2
        assert capsys.readouterr().err.startswith('mae-transfer train: error: config not found: nope.py')
    monkeypatch.setattr(sys, 'argv', ['mae-transfer', '--debug', 'test', 'nope.py', 'none.pth'])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()  # what the console script calls
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == 'mae-transfer test: error: file not found: none.pth'
