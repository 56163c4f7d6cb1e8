"""Save the random number generators with every checkpoint and restore them on resume.

mmengine re-seeds from `randomness.seed` when a run starts, so a resumed run draws different masks and
augmentations than the run it continues. With the generator states saved at the checkpoint and restored on
resume, a run resumed at an epoch boundary repeats the uninterrupted run exactly
(tests/engine/test_resume_and_faults.py).
Data-loader workers take their seeds from the main process's torch generator each time an epoch's iterator
is created (`seed_worker`); the augmentations of each sample are seeded from (seed, epoch, position) alone
(mae_transfer/datasets/seeded_samples.py), so this also holds with any `num_workers` and persistent workers
(tests/engine/test_exact_resume_workers.py).
In a distributed run every process has its own generators (different masks per rank): the checkpoint keeps all
of them and each process gets its own back (tests/tasks/test_elastic_restart.py).
"""
import random
from typing import List, Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import Hook

from ..registry import FUNCTIONS, HOOKS

CHECKPOINT_KEY = 'rng_state'
PER_RANK_KEY = 'rng_state_per_rank'


def rng_state() -> dict:
    state = dict(python=random.getstate(), numpy=np.random.get_state(), torch=torch.get_rng_state())
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Put the python / numpy / torch (/ CUDA) generator states in each checkpoint; restore them on resume."""

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self.iterated_loader = False
        self.all_ranks: Optional[List[dict]] = None

    def collect_all_ranks(self) -> None:
        """Gather every rank's generator states for the next checkpoint. A collective: all ranks call it
        (SafeCheckpointHook does, just before a save, which then runs on rank 0 alone)."""
        self.all_ranks = all_gather_object(rng_state()) if get_world_size() > 1 else None

    def before_train_epoch(self, runner) -> None:
        # A DataLoader draws its workers' base seed from the main torch generator each time it creates an
        # iterator: every epoch, or with persistent workers only in the first epoch of the process, which after
        # a resume is a later epoch than in the uninterrupted run. Drawing that seed in the later epochs too
        # makes each epoch cost the main stream one draw either way.
        loader = runner.train_loop.dataloader
        if self.iterated_loader and getattr(loader, 'persistent_workers', False) and loader.num_workers > 0:
            torch.empty((), dtype=torch.int64).random_(generator=loader.generator)
        self.iterated_loader = True

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = rng_state()
        if self.all_ranks is not None:
            checkpoint[PER_RANK_KEY], self.all_ranks = self.all_ranks, None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # Also called for `load_from` (fine-tuning from weights): only a resume continues the same run.
        if getattr(runner, '_resume', False) and CHECKPOINT_KEY in checkpoint:
            per_rank = checkpoint.get(PER_RANK_KEY)
            same_world = per_rank is not None and len(per_rank) == get_world_size()
            set_rng_state(per_rank[get_rank()] if same_world else checkpoint[CHECKPOINT_KEY])


@FUNCTIONS.register_module()
def seed_worker(worker_id: int) -> None:
    """Seed a data-loader worker from the seed the DataLoader drew for this epoch's iterator.

    Use as `train_dataloader.worker_init_fn=dict(type='mae_transfer.seed_worker')` (tools/train.py sets it).
    mmengine's default seeds every worker with `seed + worker_id + rank * num_workers` alone, so
    non-persistent workers repeat the same augmentations every epoch. `torch.initial_seed()` in a worker is
    the DataLoader's per-iterator base seed (drawn from the main process's generator, which `randomness.seed`
    seeds) + worker_id: new every epoch and identical across an exact resume; the rank keeps the processes
    of a distributed run apart. Under tools/train.py the dataset's own draws are seeded per sample
    (SeededSamples); these worker seeds serve whatever draws outside `__getitem__` (a collate function).
    """
    worker_seed = (torch.initial_seed() + 1_000_003 * get_rank()) % 2**32
    random.seed(worker_seed)
    np.random.seed(worker_seed)
    torch.manual_seed(worker_seed)
