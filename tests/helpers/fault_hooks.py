"""Faults injected into real training subprocesses by the reliability tests (imported via custom_imports)."""
import os
import signal

import torch
from mmengine.hooks import Hook

from mae_transfer.registry import HOOKS


@HOOKS.register_module()
class KillAtIterationHook(Hook):
    """SIGKILL the training process just before iteration `iteration` (1-based) starts: no cleanup at all."""

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if runner.iter + 1 == self.iteration:
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class PoisonWeightsHook(Hook):
    """Set one weight to NaN before iteration `iteration` (1-based): the loss of that iteration is NaN."""

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if runner.iter + 1 == self.iteration:
            model = runner.model.module if hasattr(runner.model, 'module') else runner.model
            with torch.no_grad():
                next(model.parameters()).view(-1)[0] = float('nan')


@HOOKS.register_module()
class KillRankOnFirstAttemptHook(Hook):
    """SIGKILL process `rank` just before iteration `iteration` (1-based), only on torchrun's first attempt
    (TORCHELASTIC_RESTART_COUNT 0): the restarted group must get through."""

    def __init__(self, iteration: int, rank: int) -> None:
        self.iteration = iteration
        self.rank = rank

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        first_attempt = int(os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')) == 0
        if first_attempt and runner.rank == self.rank and runner.iter + 1 == self.iteration:
            os.kill(os.getpid(), signal.SIGKILL)


class SimulatedCrash(RuntimeError):
    """Raised by CrashAtIterationHook: a crash that in-process tests can catch."""


@HOOKS.register_module()
class CrashAtIterationHook(Hook):
    """Raise SimulatedCrash just before iteration `iteration` (1-based): an in-process stand-in for a kill."""

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if runner.iter + 1 == self.iteration:
            raise SimulatedCrash(f'crash before iteration {self.iteration}')
