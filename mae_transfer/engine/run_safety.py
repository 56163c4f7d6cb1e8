"""The guards every training run of ours gets (tools/train.py applies them to any config)."""
from mmengine.config import Config

from .seeded_loader import seed_each_sample

SAFETY_HOOKS = ('RNGStateHook', 'NonFiniteLossHook')


def add_run_safety(cfg: Config) -> None:
    """Add exact-resume RNG saving, the non-finite loss stop and per-epoch worker seeds, unless configured.

    - `mae_transfer.RNGStateHook`: generator states in every checkpoint, restored on `--resume`.
    - `mae_transfer.NonFiniteLossHook`: stop at the first NaN/inf loss, before it can be checkpointed.
    - `train_dataloader.worker_init_fn = mae_transfer.seed_worker`: fresh augmentations every epoch and
      reproducible ones after a resume (mmengine's default repeats them each epoch).
    - `seed_each_sample(train_dataloader)`: each sample's augmentations seeded from (seed, epoch, rank, position),
      whatever worker loads it: exact resume with persistent workers and any number of workers.
    - `mae_transfer.SafeCheckpointHook` in place of mmengine's CheckpointHook: a failed save (full disk) keeps the
      previous checkpoint and stops training with a message that names the path and the free space.
    A config that already names one of these (or its own worker_init_fn or checkpoint hook) keeps its choice.
    """
    hooks = list(cfg.get('custom_hooks') or [])
    named = {str(hook.get('type', '')).split('.')[-1] for hook in hooks}
    hooks += [dict(type=f'mae_transfer.{name}') for name in SAFETY_HOOKS if name not in named]
    cfg.custom_hooks = hooks
    checkpoint = (cfg.get('default_hooks') or {}).get('checkpoint')
    if checkpoint and str(checkpoint.get('type', '')) in ('CheckpointHook', 'mmengine.CheckpointHook'):
        checkpoint.type = 'mae_transfer.SafeCheckpointHook'
    loader = cfg.get('train_dataloader')
    if loader is not None:
        if 'worker_init_fn' not in loader:
            loader.worker_init_fn = dict(type='mae_transfer.seed_worker')
        seed_each_sample(loader)
