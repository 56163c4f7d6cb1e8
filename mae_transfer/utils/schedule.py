"""Stretch or shrink a config's training schedule as a whole: length, warmup, lr steps, cosine, intervals.

Setting only `train_cfg.max_epochs` leaves the schedulers where they were: a cosine that ends at epoch 50 of a
run made 200 epochs long trains the last 150 at lr 0. These helpers move every boundary by the same factor
(units do not matter: a per-iteration warmup inside an epoch-based loop scales the same way).
"""
from typing import Optional

from mmengine.config import Config


def scale_schedule(cfg: Config, factor: float) -> None:
    """Multiply the schedule's length and every scheduler boundary by `factor`, in place.

    Boundaries stay whole and ordered: a boundary above 0 stays >= 1, shared boundaries (a warmup's end, the
    cosine's begin) move together, every scheduler keeps end > begin, and a cosine's T_max that spanned its
    [begin, end) still does. Validation and checkpoint intervals shrink with the run, never beyond its end.
    """
    if factor <= 0:
        raise ValueError(f'the schedule factor must be positive, got {factor}')
    if factor == 1.0:
        return
    length_key = 'max_epochs' if 'max_epochs' in cfg.train_cfg else 'max_iters'
    old_length = cfg.train_cfg[length_key]

    def point(value: float) -> int:
        return 0 if value == 0 else max(1, round(value * factor))

    new_length = point(old_length)
    cfg.train_cfg[length_key] = new_length
    if 'val_interval' in cfg.train_cfg:
        cfg.train_cfg.val_interval = min(point(cfg.train_cfg.val_interval), new_length)
    checkpoint = cfg.get('default_hooks', {}).get('checkpoint')
    if checkpoint and 'interval' in checkpoint and checkpoint.interval > 0:
        checkpoint.interval = min(point(checkpoint.interval), new_length)
    schedulers = cfg.get('param_scheduler') or []
    for scheduler in [schedulers] if isinstance(schedulers, dict) else schedulers:
        old_begin, old_end = scheduler.get('begin', 0), scheduler.get('end')
        if 'begin' in scheduler:
            scheduler.begin = point(old_begin)
        if old_end is not None and old_end < 10 ** 8:  # mmengine's default end is INF: leave it
            scheduler.end = max(point(old_end), scheduler.get('begin', 0) + 1)
        if 'T_max' in scheduler:
            spans = old_end is not None and scheduler.T_max == old_end - old_begin
            scheduler.T_max = scheduler.end - scheduler.get('begin', 0) if spans else point(scheduler.T_max)
        if 'milestones' in scheduler:
            scheduler.milestones = [point(milestone) for milestone in scheduler.milestones]


def set_schedule_length(cfg: Config, epochs: Optional[int] = None, iters: Optional[int] = None) -> None:
    """Make an epoch-based run `epochs` long (or an iteration-based one `iters` long), scaling the whole schedule.

    Raises `ValueError` when the config's loop counts the other unit.
    """
    if (epochs is None) == (iters is None):
        raise ValueError('give exactly one of epochs and iters')
    unit, length = ('epochs', epochs) if epochs is not None else ('iters', iters)
    key = f'max_{unit}'
    if key not in cfg.train_cfg:
        other = 'iters' if unit == 'epochs' else 'epochs'
        raise ValueError(f'this config trains for train_cfg.max_{other}, not {key}: give --{other} instead')
    if length < 1:
        raise ValueError(f'{unit} must be at least 1, got {length}')
    scale_schedule(cfg, length / cfg.train_cfg[key])
    cfg.train_cfg[key] = length  # exact, whatever the rounding of the factor


__all__ = ['scale_schedule', 'set_schedule_length']
