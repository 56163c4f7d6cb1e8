"""Augmentations depend on (seed, epoch, position) only: a resume is exact with persistent workers and any number
of workers (mae_transfer/datasets/seeded_samples.py, set up for every run by add_run_safety).

The runs are in-process `tools/train.py` runs of the shipped tiny configs, shrunk, with their persistent
workers; the crash is an exception raised from a hook (tests/helpers/fault_hooks.py), the resume `--resume`.
"""
import multiprocessing
import random
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.runner import Runner
from torch.utils.data import Dataset

from mae_transfer.checkpoint import safe_torch_load
from mae_transfer.datasets import generate_images
from mae_transfer.datasets.synthetic import ensure_synthetic
from mae_transfer.engine.seeded_loader import seed_each_sample
from mae_transfer.tools.train import main as train_main

from helpers.fault_hooks import SimulatedCrash
from helpers.paths import REPO


class NoisySamples(Dataset):
    """Sample i: (i, a draw from python's, numpy's and torch's global generators), as an augmentation draws."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __getitem__(self, index: int) -> Tuple[int, float, float, float]:
        return index, random.random(), float(np.random.rand()), float(torch.rand(()))

    def __len__(self) -> int:
        return self.size


def draws_per_epoch(num_workers: int, epochs: List[int]) -> List[Dict[int, tuple]]:
    """{sample index: its draws} for each of `epochs`, from one loader (persistent workers if any)."""
    loader_cfg = ConfigDict(batch_size=3, num_workers=num_workers, persistent_workers=num_workers > 0,
                            drop_last=True, collate_fn=list,  # the samples as they are, uncollated
                            sampler=dict(type='DefaultSampler', shuffle=True, seed=3),
                            dataset=dict(type=NoisySamples, size=10))
    seed_each_sample(loader_cfg)
    loader = Runner.build_dataloader(loader_cfg)
    assert (loader.batch_sampler.batch_size, loader.batch_sampler.drop_last) == (3, True)  # FlexibleRunner reads it
    result = []
    for epoch in epochs:
        loader.batch_sampler.sampler.set_epoch(epoch)  # what DistSamplerSeedHook does
        result.append({sample[0]: sample[1:] for batch in loader for sample in batch})
    return result


def test_a_sample_draws_the_same_whatever_the_workers_and_their_lifetime():
    main_state = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    in_main = draws_per_epoch(0, [0, 1])
    # The main process keeps its own streams: only the DataLoader's base seed, one draw an epoch, is taken.
    assert random.getstate() == main_state[0] and np.array_equal(np.random.get_state()[1], main_state[1])
    after = torch.get_rng_state()
    torch.set_rng_state(main_state[2])
    torch.empty((), dtype=torch.int64).random_(), torch.empty((), dtype=torch.int64).random_()
    assert torch.equal(torch.get_rng_state(), after)
    assert len(in_main[0]) == 9  # drop_last moved into the batch sampler: 3 batches of 3
    assert in_main[0].keys() != in_main[1].keys() or in_main[0] != in_main[1]
    common = in_main[0].keys() & in_main[1].keys()
    assert all(in_main[0][i][k] != in_main[1][i][k] for i in common for k in range(3)), 'new draws each epoch'
    assert draws_per_epoch(2, [0, 1]) == in_main  # two persistent workers that live through both epochs
    assert draws_per_epoch(1, [1]) == in_main[1:]  # a fresh worker started at epoch 1, as after a resume


def test_a_configured_batch_sampler_stays_inside_the_wrapper():
    loader = ConfigDict(batch_size=2, batch_sampler=dict(type='AspectRatioBatchSampler'), dataset=dict(type='X'))
    seed_each_sample(loader)
    assert loader.batch_sampler == dict(type='mae_transfer.SeededBatchSampler', drop_last=False,
                                        batch_sampler=dict(type='AspectRatioBatchSampler'))
    assert loader.dataset == dict(type='mae_transfer.SeededSamples', dataset=dict(type='X'))
    seed_each_sample(loader)  # a second call (or a config that sets it up itself) changes nothing
    assert loader.dataset.dataset == dict(type='X')


def train_and_end_workers(argv: List[str]) -> None:
    """tools/train.py in this process, then end the data-loader workers it started: when the finished run's
    loader was collected later, torch's shutdown waited its 5 s timeout on each worker (10-40 s a run here)."""
    before = set(multiprocessing.active_children())
    try:
        train_main(argv)
    finally:
        for worker in set(multiprocessing.active_children()) - before:
            worker.terminate()
            worker.join()


def train_crash_resume(config_text: str, folder: Path, crash_at: int, last_checkpoint: str) -> Tuple[dict, dict]:
    """The final weights of an uninterrupted run and of a run crashed before iteration `crash_at` and resumed."""
    crash_hook = f"custom_hooks = [dict(type='CrashAtIterationHook', iteration={crash_at})]\n"
    configs = {}
    for name, extra in (('straight', ''), ('crashing', crash_hook)):
        configs[name] = folder / f'{name}.py'
        configs[name].write_text(config_text + extra)
    train_and_end_workers([str(configs['straight']), '--work-dir', str(folder / 'straight')])
    with pytest.raises(SimulatedCrash):
        train_and_end_workers([str(configs['crashing']), '--work-dir', str(folder / 'crashed')])
    train_and_end_workers([str(configs['straight']), '--work-dir', str(folder / 'crashed'), '--resume'])
    return tuple(safe_torch_load(str(folder / run / last_checkpoint))['state_dict'] for run in ('straight', 'crashed'))


def assert_same_weights(expected: dict, got: dict) -> None:
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), f'{name}: {(expected[name] - got[name]).abs().max()}'


PRETRAIN = REPO / 'configs' / 'pretrain' / 'mae_vit-tiny-p16_1xb32-coslr-50e_synthetic-128x128.py'
CLS = REPO / 'configs' / 'cls' / 'ft_vit-tiny-p16_1xb32-600i_synthetic-64x64.py'
HEADER = "custom_imports = dict(imports=['mae_transfer', 'helpers.fault_hooks'], allow_failed_imports=False)\n"


def test_pretraining_resumed_mid_epoch_with_persistent_workers_equals_an_uninterrupted_run(tmp_path):
    images = tmp_path / 'images'
    generate_images(images, num_images=8, seed=1, size_range=(40, 70))
    # The shipped loader (2 persistent workers), 32 px, batch 4: 2 iterations an epoch, a checkpoint each.
    config = (f"_base_ = [{str(PRETRAIN)!r}]\n{HEADER}"
              f"model = dict(img_size=32)\n"
              f"train_dataloader = dict(batch_size=4, dataset=dict(data_root={str(images)!r}, crop_size=32))\n"
              f"auto_scale_lr = dict(base_batch_size=4)\n"
              f"train_cfg = dict(max_epochs=2)\n"
              f"default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1, max_keep_ckpts=5))\n"
              f"custom_hooks = []\n")
    assert 'persistent_workers=True' in PRETRAIN.read_text().replace(' ', '')
    expected, got = train_crash_resume(config, tmp_path, crash_at=4, last_checkpoint='epoch_2.pth')
    assert_same_weights(expected, got)


def test_classification_resumed_with_persistent_workers_equals_an_uninterrupted_run(tmp_path):
    data = ensure_synthetic('cls', tmp_path / 'cls', train_per_class=2, val_per_class=1, image_size=(40, 48))
    # The shipped iteration-based loader (InfiniteSampler, RandAugment, random erasing) with 2 persistent workers;
    # a checkpoint at iteration 2, the crash before iteration 4.
    config = (f"_base_ = [{str(CLS)!r}]\n{HEADER}"
              f"train_dataloader = dict(batch_size=4, num_workers=2, persistent_workers=True,\n"
              f"    dataset=dict(data_root={str(data / 'train')!r}, transform=dict(input_size=32)))\n"
              f"val_dataloader = None\nval_cfg = None\nval_evaluator = None\n"
              f"test_dataloader = None\ntest_cfg = None\ntest_evaluator = None\n"
              f"train_cfg = dict(max_iters=4, val_interval=100)\n"
              f"default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2))\n")
    expected, got = train_crash_resume(config, tmp_path, crash_at=4, last_checkpoint='iter_4.pth')
    assert_same_weights(expected, got)
