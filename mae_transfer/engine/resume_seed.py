"""A resumed run takes the seed of the run it continues, also when the config sets none.

mmdet's and mmseg's runtime configs leave `randomness.seed` unset: mmengine then draws a fresh seed in every
process start, and the train data loader's sampler (the data order, and the per-sample augmentation keys of
`mae_transfer.SeededSamples`) is built from that seed before the checkpoint is read. mmengine restores the
checkpoint's seed only afterwards, too late for the sampler, so a resumed run would see another data order than
an uninterrupted one. Reading the seed from the checkpoint's meta before the Runner is built gives the resumed
run the same sampler, and the resume stays exact.
"""
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.logging import print_log

from ..checkpoint.files import find_latest_checkpoint
from ..checkpoint.safe_load import register_safe_globals, safe_torch_load


def checkpoint_seed(path: str) -> Optional[int]:
    """`meta.seed` of an mmengine checkpoint, without reading its tensors (memory-mapped) where torch can."""
    register_safe_globals()
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
    except (RuntimeError, ValueError):  # a legacy (non-zip) file cannot be memory-mapped: read it whole
        checkpoint = safe_torch_load(path)
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    seed = meta.get('seed') if isinstance(meta, dict) else None
    return int(seed) if seed is not None else None


def keep_the_resumed_seed(cfg: Config) -> Optional[int]:
    """When resuming a config without `randomness.seed`, set it to the checkpoint's seed; returns it (or None).

    The checkpoint is `cfg.load_from`, else the work dir's last complete one (what mmengine resumes from).
    A config with its own seed keeps it (mmengine warns if the checkpoint's differs).
    """
    randomness = dict(cfg.get('randomness') or {})
    if not cfg.get('resume') or randomness.get('seed') is not None:
        return None
    path = cfg.get('load_from') or find_latest_checkpoint(cfg.work_dir)
    if not path or not osp.isfile(path):
        return None
    seed = checkpoint_seed(path)
    if seed is not None:
        randomness['seed'] = seed
        cfg.randomness = randomness
        print_log(f'the config sets no seed: resuming with the seed of {path} ({seed}), so the data order and '
                  'augmentations continue as in the run it was saved from', logger='current')
    return seed
