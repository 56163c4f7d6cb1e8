"""`tools/train.py --compile`: torch.compile the network that does the work, and say what compiling cost.

mmengine's own `compile=True` compiles the whole `train_step`: data preprocessing, the loss dictionaries and the
optimizer update, which dynamo cannot trace in mmengine 0.10.7 (`'UserDefinedDictVariable' object has no
attribute 'items'`). We compile the network instead, in place (`nn.Module.compile`): the MAE of pretraining,
else the backbone. The backbone carries most of the FLOPs of every downstream task, and mmdet's and mmseg's
heads have data-dependent shapes (proposals, sampled RoIs) that would recompile at every step. The first
iteration pays for the compilation; its time is logged, not hidden.
"""
import time
from typing import Optional

from mmengine.hooks import Hook
from torch import nn

from ..registry import HOOKS
from .distributed import unwrap_model


def compile_target(model: nn.Module) -> nn.Module:
    """The part of a model that `--compile` compiles: the MAE (pretraining), else the backbone."""
    for name in ('mae', 'backbone'):
        if isinstance(getattr(model, name, None), nn.Module):
            return getattr(model, name)
    raise ValueError(f'{type(model).__name__} has neither an MAE nor a backbone to compile')


@HOOKS.register_module()
class CompileHook(Hook):
    """Compile the network before training (see the module docstring).

    Args:
        backend: torch.compile backend ('inductor' generates kernels; 'eager' only traces, for debugging).
        mode: torch.compile mode (None, 'reduce-overhead', 'max-autotune').
    """

    priority = 'VERY_HIGH'  # before hooks that time or draw the first iteration

    def __init__(self, backend: str = 'inductor', mode: Optional[str] = None):
        self.backend, self.mode = backend, mode
        self._start: Optional[float] = None
        self._timed = False  # the first iteration of this process (a resumed run compiles again)

    def before_train(self, runner) -> None:
        target = compile_target(unwrap_model(runner.model))
        target.compile(backend=self.backend, mode=self.mode)
        runner.logger.info(f'--compile: {type(target).__name__} compiled with torch.compile(backend='
                           f'{self.backend!r}, mode={self.mode!r}); the first iteration includes the compilation')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if not self._timed:
            self._start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if not self._timed and self._start is not None:
            seconds = time.perf_counter() - self._start
            runner.logger.info(f'--compile: the first iteration took {seconds:.1f} s (compilation included)')
            runner.message_hub.update_info('compile_first_iter_s', seconds)
            self._timed = True


__all__ = ['CompileHook', 'compile_target']
