"""torchrun's elastic restarts: a worker SIGKILLed mid-epoch, the group restarts and resumes on its own, exactly.

The end-to-end test runs `tools/dist_train.sh` (2 gloo processes, MAX_RESTARTS=1) on the tiny pretraining recipe;
the kill comes from tests/helpers/fault_hooks.py. The decision helper is tested on its own below.
"""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest
import torch
from mmengine.config import Config

from mae_transfer.checkpoint import atomic_write, safe_torch_load
from mae_transfer.datasets import generate_images
from mae_transfer.engine.elastic import process_start_time, resume_after_elastic_restart

from helpers.paths import REPO

TINY = REPO / 'configs' / 'pretrain' / 'mae_vit-tiny-p16_1xb32-coslr-50e_synthetic-128x128.py'
ITERS_PER_EPOCH = 2  # 8 images / (2 processes x batch 2)


def free_port() -> str:
    """A port nobody listens on now: other test runs share the machine, a fixed port could be taken."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return str(s.getsockname()[1])


def write_config(folder: Path, image_dir: Path, fault_hook: Optional[dict] = None) -> Path:
    """The tiny recipe at 32 px, 2 epochs, in-process data loading, a checkpoint every epoch, a fixed seed."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / 'tiny_pretrain.py'
    config.write_text(
        f"_base_ = [{str(TINY)!r}]\n"
        f"custom_imports = dict(imports=['mae_transfer', 'helpers.fault_hooks'], allow_failed_imports=False)\n"
        f"model = dict(img_size=32)\n"
        f"train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,\n"
        f"                        dataset=dict(data_root={str(image_dir)!r}, crop_size=32))\n"
        f"auto_scale_lr = dict(base_batch_size=4)\n"
        f"train_cfg = dict(max_epochs=2)\n"
        f"default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1, max_keep_ckpts=5))\n"
        f"custom_hooks = {[fault_hook] if fault_hook else []!r}\n"
        f"randomness = dict(seed=7)\n")
    return config


def dist_train(config: Path, work_dir: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHON=sys.executable, PORT=free_port(), MAX_RESTARTS='1', OMP_NUM_THREADS='1',
               PYTHONPATH=f'{REPO / "tests"}{os.pathsep}{os.environ.get("PYTHONPATH", "")}')
    return subprocess.Popen(['bash', 'tools/dist_train.sh', str(config), '2', '--work-dir', str(work_dir)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_killed_worker_restarts_the_group_which_resumes_and_ends_as_an_uninterrupted_run(tmp_path):
    image_dir = tmp_path / 'images'
    generate_images(image_dir, num_images=8, seed=1, size_range=(40, 70))
    kill = dict(type='KillRankOnFirstAttemptHook', iteration=ITERS_PER_EPOCH + 2, rank=1)  # mid epoch 2
    # Both runs at once: most of their time is start-up (imports), which overlaps well.
    straight = dist_train(write_config(tmp_path / 'straight', image_dir), tmp_path / 'straight')
    elastic = dist_train(write_config(tmp_path / 'elastic', image_dir, kill), tmp_path / 'elastic')
    straight_log, _ = straight.communicate(timeout=300)
    elastic_log, _ = elastic.communicate(timeout=300)
    assert straight.returncode == 0, straight_log[-3000:]
    assert elastic.returncode == 0, elastic_log[-3000:]
    assert 'exitcode: -9' in elastic_log and 'local_rank: 1' in elastic_log, elastic_log[-3000:]  # torchrun's
    checkpoint = tmp_path / 'elastic' / 'epoch_1.pth'
    assert f'elastic restart 1: resuming from {checkpoint}' in elastic_log, elastic_log[-3000:]
    assert f'resumed epoch: 1, iter: {ITERS_PER_EPOCH}' in elastic_log, elastic_log[-3000:]  # mmengine's

    expected = safe_torch_load(str(tmp_path / 'straight' / 'epoch_2.pth'))
    got = safe_torch_load(str(tmp_path / 'elastic' / 'epoch_2.pth'))
    assert got['meta']['iter'] == expected['meta']['iter'] == 2 * ITERS_PER_EPOCH
    assert expected['state_dict'].keys() == got['state_dict'].keys()
    for name, value in expected['state_dict'].items():
        assert torch.equal(got['state_dict'][name], value), name


def test_restart_resumes_only_from_a_checkpoint_this_job_wrote(tmp_path, log_records):
    stale = tmp_path / 'epoch_3.pth'
    atomic_write(b'an earlier run', stale)
    atomic_write(str(stale), tmp_path / 'last_checkpoint')
    job_start = time.time() + 10  # the job began after the stale checkpoint was written
    cfg = Config(dict(work_dir=str(tmp_path)))

    assert resume_after_elastic_restart(cfg, restart_count=0, job_start=0.0) is None  # first attempt: no change
    assert 'resume' not in cfg and not log_records
    assert resume_after_elastic_restart(cfg, restart_count=1, job_start=job_start) is None
    assert 'resume' not in cfg and log_records[-1].endswith('starting over')
    cfg.resume, cfg.load_from = True, '/elsewhere/epoch_9.pth'  # --resume CHECKPOINT stands without a newer one
    assert resume_after_elastic_restart(cfg, restart_count=1, job_start=job_start) is None
    assert cfg.load_from == '/elsewhere/epoch_9.pth' and '/elsewhere/epoch_9.pth' in log_records[-1]

    ours = tmp_path / 'epoch_4.pth'
    atomic_write(b'this job', ours)
    os.utime(ours, (job_start + 5, job_start + 5))
    atomic_write(str(ours), tmp_path / 'last_checkpoint')
    assert resume_after_elastic_restart(cfg, restart_count=2, job_start=job_start) == str(ours)
    assert cfg.resume and cfg.load_from == str(ours)
    assert log_records[-1].startswith(f'elastic restart 2: resuming from {ours}')


def test_process_start_time_is_not_before_the_real_start():
    before = time.time()
    child = subprocess.Popen(['sleep', '30'])
    try:
        started = process_start_time(child.pid)
    finally:
        child.kill()
        child.wait()
    if started is None:
        pytest.skip('no /proc on this system')
    assert before <= started <= before + 2.5
