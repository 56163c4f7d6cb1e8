"""Scale the learning rate by the effective batch, gradient accumulation included.

MAE-style recipes state `lr = base_lr * effective_batch / base_batch`. mmengine's `auto_scale_lr` multiplies
by `world_size * batch_size` only and forgets `accumulative_counts`, so a run that accumulates gradients to
reach the paper's batch would train with a too-small lr. We scale the config before the Runner sees it.
"""
from mmengine.config import Config


def effective_batch_size(cfg: Config, world_size: int) -> int:
    accumulation = cfg.optim_wrapper.get('accumulative_counts', 1)
    return world_size * cfg.train_dataloader.batch_size * accumulation


def scale_lr_to_effective_batch(cfg: Config, world_size: int) -> float:
    """If `cfg.auto_scale_lr.enable`, rescale the optimizer lr in place and disable mmengine's own scaling.

    The config's lr is the one for `auto_scale_lr.base_batch_size`. Returns the factor applied (1.0 if off).
    """
    auto_scale = cfg.get('auto_scale_lr')
    if not auto_scale or not auto_scale.get('enable', False):
        return 1.0
    factor = effective_batch_size(cfg, world_size) / auto_scale['base_batch_size']
    cfg.optim_wrapper.optimizer.lr = cfg.optim_wrapper.optimizer.lr * factor
    cfg.auto_scale_lr.enable = False  # done here; mmengine would scale again without the accumulation
    return factor
