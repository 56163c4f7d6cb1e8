"""A tiny MAE pretraining run survives faults: SIGKILL + resume is exact, saves are atomic, NaN stops cleanly.

Every run is a real `tools/train.py` subprocess; faults come from tests/helpers/fault_hooks.py.
"""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mae_transfer.checkpoint import atomic_write, find_latest_checkpoint, safe_torch_load
from mae_transfer.datasets import generate_images
from mae_transfer.utils.report import read_scalars, training_curve

from helpers.paths import REPO

TINY = REPO / 'configs' / 'pretrain' / 'mae_vit-tiny-p16_1xb32-coslr-50e_synthetic-128x128.py'
ITERS_PER_EPOCH = 3  # 12 images / batch 4


@pytest.fixture(scope='module')
def image_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp('images')
    generate_images(folder, num_images=12, seed=1, size_range=(40, 70))
    return folder


def write_config(folder: Path, image_dir: Path, fault_hook: dict = None) -> Path:
    """The tiny pretraining recipe at 32 px, 3 epochs, a checkpoint every epoch, one loader worker."""
    hooks = [fault_hook] if fault_hook else []
    config = folder / 'tiny_pretrain.py'
    config.write_text(
        f"_base_ = [{str(TINY)!r}]\n"
        f"custom_imports = dict(imports=['mae_transfer', 'helpers.fault_hooks'], allow_failed_imports=False)\n"
        f"model = dict(img_size=32)\n"
        f"train_dataloader = dict(batch_size=4, num_workers=1, persistent_workers=False,\n"
        f"                        dataset=dict(data_root={str(image_dir)!r}, crop_size=32))\n"
        f"auto_scale_lr = dict(base_batch_size=4)\n"
        f"train_cfg = dict(max_epochs=3)\n"
        f"default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1, max_keep_ckpts=5))\n"
        f"custom_hooks = {hooks!r}\n"
        f"randomness = dict(seed=7)\n")
    return config


def start_training(config: Path, work_dir: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=f'{REPO / "tests"}{os.pathsep}{os.environ.get("PYTHONPATH", "")}')
    return subprocess.Popen([sys.executable, str(REPO / 'tools' / 'train.py'), str(config), '--work-dir',
                             str(work_dir), *extra], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finished(process: subprocess.Popen) -> subprocess.CompletedProcess:
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def train(config: Path, work_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    return finished(start_training(config, work_dir, *extra))


def final_losses(work_dir: Path) -> list:
    """The per-iteration losses the logger wrote to <work_dir>/<timestamp>/vis_data/scalars.json."""
    return training_curve(read_scalars(work_dir))[1]


def test_sigkill_then_resume_equals_an_uninterrupted_run(image_dir, tmp_path):
    killed_dir = tmp_path / 'killed'
    kill_at = ITERS_PER_EPOCH + 2  # in the middle of epoch 2: epoch_1.pth is the last checkpoint
    (tmp_path / 'k').mkdir()
    killed_cfg = write_config(tmp_path / "k", image_dir, dict(type='KillAtIterationHook', iteration=kill_at))
    # The uninterrupted run and the one to kill are independent: run them side by side (mostly start-up time).
    straight, killed = map(finished, [start_training(write_config(tmp_path, image_dir), tmp_path / 'straight'),
                                      start_training(killed_cfg, killed_dir)])
    assert straight.returncode == 0, straight.stderr[-3000:]
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert (killed_dir / 'epoch_1.pth').exists() and not (killed_dir / 'epoch_2.pth').exists()

    resumed = train(write_config(tmp_path, image_dir), killed_dir, '--resume')
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'resumed epoch: 1, iter: 3' in resumed.stdout + resumed.stderr

    expected = safe_torch_load(str(tmp_path / 'straight' / 'epoch_3.pth'))['state_dict']
    got = safe_torch_load(str(killed_dir / 'epoch_3.pth'))['state_dict']
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-6, msg=name)
    # The losses of the resumed epochs 2-3 repeat the uninterrupted run's.
    straight_losses = final_losses(tmp_path / 'straight')
    resumed_losses = final_losses(killed_dir)
    assert len(straight_losses) == 3 * ITERS_PER_EPOCH
    assert resumed_losses[-2 * ITERS_PER_EPOCH:] == pytest.approx(straight_losses[-2 * ITERS_PER_EPOCH:], rel=1e-5)


def test_non_finite_loss_stops_with_the_iteration_and_keeps_the_last_good_checkpoint(image_dir, tmp_path):
    poison_at = ITERS_PER_EPOCH + 2
    result = train(write_config(tmp_path, image_dir, dict(type='PoisonWeightsHook', iteration=poison_at)),
                   tmp_path / 'work')
    assert result.returncode != 0
    assert f'non-finite loss at iteration {poison_at}' in result.stderr
    work = tmp_path / 'work'
    assert not (work / 'epoch_2.pth').exists(), 'the broken weights must not be saved'
    last = (work / 'last_checkpoint').read_text().strip()
    assert last.endswith('epoch_1.pth') and last in result.stderr
    state = safe_torch_load(last)['state_dict']
    assert all(torch.isfinite(value).all() for value in state.values() if value.is_floating_point())


_KILL_DURING_SAVE = """
import os, signal, sys
import mae_transfer.checkpoint.files as files
def killed_fsync(fd):
    os.kill(os.getpid(), signal.SIGKILL)  # the bytes are partly on disk, the rename has not happened
files.os.fsync = killed_fsync
files.atomic_write(b'new' * 1_000_000, sys.argv[1])
"""


def test_a_save_killed_midway_leaves_the_previous_checkpoint_intact(tmp_path):
    target = tmp_path / 'iter_4.pth'
    atomic_write(b'previous complete checkpoint', target)
    result = subprocess.run([sys.executable, '-c', _KILL_DURING_SAVE, str(target)], cwd=REPO)
    assert result.returncode == -signal.SIGKILL
    assert target.read_bytes() == b'previous complete checkpoint'
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != 'iter_4.pth']
    assert leftovers and all('.tmp-' in name for name in leftovers)  # the torn bytes sit in a temporary file


def test_resume_ignores_a_torn_pointer_and_temporary_files(tmp_path):
    for name, data in (('iter_2.pth', b'x'), ('iter_4.pth', b'y'), ('iter_6.pth.tmp-123', b'torn')):
        (tmp_path / name).write_bytes(data)
    (tmp_path / 'last_checkpoint').write_text('')  # killed while the pointer was being written
    assert find_latest_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_4.pth')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_2.pth'))
    assert find_latest_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_2.pth')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'gone.pth'))
    assert find_latest_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_4.pth')
    assert find_latest_checkpoint(str(tmp_path / 'nothing_here')) is None
