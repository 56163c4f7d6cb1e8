"""Distributed training on CPU (gloo), e.g. `tools/dist_train.sh CONFIG 2` on a machine without a GPU.

mmengine 0.10.7 assumes a GPU in two places: `init_dist` calls `torch.cuda.set_device`, and the Runner
wraps the model in DDP with `device_ids=[LOCAL_RANK]`, which DDP refuses for a CPU module. We initialise
the gloo process group ourselves (mmengine then skips its own init) and wrap with a DDP that leaves
`device_ids` out for CPU modules. Nothing changes on a GPU machine.
"""
import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.model import MMDistributedDataParallel, is_model_wrapper
from torch import nn

from ..registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class CPUCompatibleDDP(MMDistributedDataParallel):
    """MMDistributedDataParallel that drops `device_ids` when the module lives on the CPU."""

    def __init__(self, module: nn.Module, device_ids=None, **kwargs):
        if next(module.parameters()).device.type == 'cpu':
            device_ids = None
        super().__init__(module=module, device_ids=device_ids, **kwargs)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside a DDP-style wrapper (mmengine's or ours), or the model itself."""
    return model.module if is_model_wrapper(model) else model


def prepare_cpu_distributed(cfg: Config, launcher: str) -> bool:
    """For a distributed launch without CUDA: init gloo and use CPUCompatibleDDP. Returns True if it did."""
    if launcher == 'none' or torch.cuda.is_available():
        return False
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend='gloo')  # rank, world size and address from torchrun's env
    wrapper_cfg = cfg.get('model_wrapper_cfg') or {}
    if wrapper_cfg.get('type', 'MMDistributedDataParallel') in ('MMDistributedDataParallel',
                                                                 'mmengine.MMDistributedDataParallel'):
        cfg.model_wrapper_cfg = dict(wrapper_cfg, type='mae_transfer.CPUCompatibleDDP', broadcast_buffers=False,
                                     find_unused_parameters=cfg.get('find_unused_parameters', False))
    return True
