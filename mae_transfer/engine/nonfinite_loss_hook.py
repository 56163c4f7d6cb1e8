"""Stop a run at the first non-finite loss, before a checkpoint of the broken weights can be written."""
import math

import torch
from mmengine.hooks import Hook

from ..registry import HOOKS


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Raise `NonFiniteLossError` naming the iteration and the last good checkpoint when a loss is not finite.

    It runs after every training iteration with a higher priority than CheckpointHook, so the update that
    produced the bad loss is never saved: `last_checkpoint` keeps pointing at the last good weights.

    Args:
        interval: check every `interval` iterations (the check is one `isfinite` per logged loss).
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, interval: int = 1) -> None:
        self.interval = interval

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not outputs or not self.every_n_train_iters(runner, self.interval):
            return
        bad = {name: float(value) for name, value in outputs.items()
               if 'loss' in name and not math.isfinite(float(value.detach() if torch.is_tensor(value) else value))}
        if bad:
            last = runner.message_hub.get_info('last_ckpt')
            where = f'the last good checkpoint is {last}' if last else 'no checkpoint has been saved yet'
            values = ', '.join(f'{name}={value}' for name, value in bad.items())
            raise NonFiniteLossError(f'non-finite loss at iteration {runner.iter + 1} ({values}); training stopped, '
                                     f'{where}. Lower the lr, enable gradient clipping, or check the data.')
