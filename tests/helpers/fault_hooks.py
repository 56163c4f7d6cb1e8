"""Faults injected into real training subprocesses by the reliability tests (imported via custom_imports)."""
import os
import signal

import torch
from mmengine.hooks import Hook

from mae_transfer.engine import unwrap_model
from mae_transfer.engine.elastic import elastic_restart_count
from mae_transfer.registry import HOOKS


class FaultAtIteration(Hook):
    """Calls `fault(runner)` just before iteration `iteration` (1-based) starts, where `applies(runner)` holds."""

    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def applies(self, runner) -> bool:
        return True

    def fault(self, runner) -> None:
        raise NotImplementedError

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if runner.iter + 1 == self.iteration and self.applies(runner):
            self.fault(runner)


@HOOKS.register_module()
class KillAtIterationHook(FaultAtIteration):
    """SIGKILL the training process: no cleanup at all."""

    def fault(self, runner) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module()
class PoisonWeightsHook(FaultAtIteration):
    """Set one weight to NaN: the loss of that iteration is NaN."""

    def fault(self, runner) -> None:
        with torch.no_grad():
            next(unwrap_model(runner.model).parameters()).view(-1)[0] = float('nan')


@HOOKS.register_module()
class KillRankOnFirstAttemptHook(KillAtIterationHook):
    """SIGKILL process `rank`, only on torchrun's first attempt (TORCHELASTIC_RESTART_COUNT 0): the restarted
    group must get through."""

    def __init__(self, iteration: int, rank: int) -> None:
        super().__init__(iteration)
        self.rank = rank

    def applies(self, runner) -> bool:
        return elastic_restart_count() == 0 and runner.rank == self.rank


class SimulatedCrash(RuntimeError):
    """Raised by CrashAtIterationHook: a crash that in-process tests can catch."""


@HOOKS.register_module()
class CrashAtIterationHook(FaultAtIteration):
    """Raise SimulatedCrash: an in-process stand-in for a kill."""

    def fault(self, runner) -> None:
        raise SimulatedCrash(f'crash before iteration {self.iteration}')
