"""Sharded training (`tools/train.py --strategy fsdp|deepspeed`) with mmengine's FlexibleRunner.

A ViT-L/H that does not fit one card with its gradients and AdamW state trains when those are sharded over the
processes: FSDP (PyTorch's FullyShardedDataParallel through mmengine's FSDPStrategy) or DeepSpeed ZeRO (when the
`deepspeed` package is installed). Both replace the Runner by mmengine's FlexibleRunner; everything else in the
config (model, data, optimizer, schedule, hooks) stays.

Two things differ from mmengine's defaults:

- `use_orig_params=True`: our optimizer constructors give each parameter its own lr and weight decay (layer
  decay, the norm / bias / token rules), which FSDP can only keep on the original parameters, and the optimizer
  is built while the parameters have their real shapes (`ShapeAwareFSDPStrategy`): sharded, every parameter
  is 1-D and the "no weight decay on 1-D parameters" rules would spare all of them;
- a CPU run: mmengine passes `device_id=LOCAL_RANK`, a CUDA index, to FSDP; on a machine without CUDA the
  wrapper shards on the CPU over gloo instead (what the equivalence test runs).

Checkpoints are saved as a full state dict by rank 0 (mmengine's FULL_STATE_DICT), with the same keys as an
unsharded run, so they load for fine-tuning and in the downstream configs like any other checkpoint.
"""
import importlib
import importlib.util
from contextlib import contextmanager
from typing import Iterator

import torch
from mmengine.config import Config
from mmengine._strategy import FSDPStrategy
from mmengine.model.wrappers import MMFullyShardedDataParallel
from torch import nn

from ..registry import MODEL_WRAPPERS, STRATEGIES

STRATEGY_CHOICES = ('ddp', 'fsdp', 'deepspeed')


@MODEL_WRAPPERS.register_module()
class DeviceFSDP(MMFullyShardedDataParallel):
    """mmengine's FSDP wrapper on the device the run has: the CPU (gloo) when CUDA is absent."""

    def __init__(self, module: nn.Module, device_id=None, **kwargs):
        if not torch.cuda.is_available():
            device_id = torch.device('cpu')
        super().__init__(module=module, device_id=device_id, **kwargs)


@STRATEGIES.register_module()
class ShapeAwareFSDPStrategy(FSDPStrategy):
    """mmengine's FSDPStrategy that builds the optimizer while the parameters have their real shapes.

    FSDP flattens every parameter into 1-D slices of a shard. Optimizer constructors tell weights from norms and
    biases by their rank (mmengine's `flat_decay_mult`, the MAE rule "no weight decay on 1-D parameters", layer
    decay): built on the sharded model, every parameter would look 1-D and nothing would be decayed. With
    `use_orig_params` the parameter objects stay the same, so the groups made on the whole parameters (gathered
    once, not written back) hold after the shards return.
    """

    def build_optim_wrapper(self, optim_wrapper, model=None):
        with full_parameters(self.model):
            return super().build_optim_wrapper(optim_wrapper, model)


@contextmanager
def full_parameters(model: nn.Module) -> Iterator[None]:
    """Every rank holds the whole parameters inside this block, for hooks that run the unwrapped model (pictures,
    k-NN): under FSDP each rank keeps only its shard. A collective: every rank must enter it. Changes made
    inside are not written back."""
    from torch.distributed.fsdp import FullyShardedDataParallel
    if isinstance(model, FullyShardedDataParallel):
        with FullyShardedDataParallel.summon_full_params(model, writeback=False):
            yield
    else:
        yield


def _check_deepspeed() -> None:
    """DeepSpeed is not part of our stack; say what is missing before the processes start."""
    if importlib.util.find_spec('deepspeed') is None:
        raise SystemExit('--strategy deepspeed needs the deepspeed package (pip install deepspeed); '
                         '--strategy fsdp shards the same way with PyTorch alone')
    try:  # mmengine 0.10.7's DeepSpeedStrategy imports it; deepspeed 0.19 (measured) no longer has it
        importlib.import_module('deepspeed.runtime.fp16.onebit')
    except ImportError as error:
        import deepspeed
        raise SystemExit(f'mmengine\'s DeepSpeedStrategy imports deepspeed.runtime.fp16.onebit, which deepspeed '
                         f'{deepspeed.__version__} no longer has ({error}); use --strategy fsdp') from error


def use_sharded_strategy(cfg: Config, strategy: str, launcher: str) -> None:
    """Switch `cfg` to mmengine's FlexibleRunner with a sharding strategy ('ddp' leaves it unchanged).

    Raises:
        SystemExit: a single-process launch (nothing to shard over), or DeepSpeed asked for but not installed.
    """
    if strategy == 'ddp':
        return
    if strategy not in STRATEGY_CHOICES:
        raise SystemExit(f'unknown strategy {strategy!r}; one of {", ".join(STRATEGY_CHOICES)}')
    if launcher == 'none':
        raise SystemExit(f'--strategy {strategy} shards over processes: launch with '
                         f'`mae-transfer dist-train CONFIG NUM_GPUS --strategy {strategy}`')
    if strategy == 'fsdp':
        # a full state dict on rank 0; offloading to the CPU is for CUDA tensors (on CPU tensors it fails)
        offload = torch.cuda.is_available()
        state_dict_cfg = dict(
            state_dict_type='FULL_STATE_DICT',
            state_dict_config=dict(type='FullStateDictConfig', rank0_only=True, offload_to_cpu=offload),
            optim_state_dict_config=dict(type='FullOptimStateDictConfig', rank0_only=True, offload_to_cpu=offload))
        cfg.strategy = dict(type='mae_transfer.ShapeAwareFSDPStrategy', state_dict_cfg=state_dict_cfg,
                            model_wrapper=dict(type='mae_transfer.DeviceFSDP', use_orig_params=True))
    else:
        _check_deepspeed()
        cfg.strategy = dict(type='DeepSpeedStrategy', zero_optimization=dict(stage=3))
        cfg.optim_wrapper.type = 'DeepSpeedOptimWrapper'
    cfg.pop('model_wrapper_cfg', None)  # the strategy wraps the model
    cfg.runner_type = 'FlexibleRunner'


__all__ = ['DeviceFSDP', 'STRATEGY_CHOICES', 'ShapeAwareFSDPStrategy', 'full_parameters', 'use_sharded_strategy']
