"""Training machinery shared by every task: checkpoint safety, mixed precision, lr scaling, hooks."""
from .distributed import CPUCompatibleDDP, prepare_cpu_distributed
from .layer_decay import LayerDecayOptimWrapperConstructor, get_layer_id
from .lr_scaling import effective_batch_size, scale_lr_to_effective_batch
from .optim_wrappers import AutocastOptimWrapper
from .reconstruction_hook import ReconstructionHook
from .safe_load import UnsafeCheckpointError, safe_torch_load

__all__ = [
    'AutocastOptimWrapper', 'CPUCompatibleDDP', 'LayerDecayOptimWrapperConstructor', 'ReconstructionHook',
    'UnsafeCheckpointError', 'effective_batch_size', 'get_layer_id', 'prepare_cpu_distributed', 'safe_torch_load',
    'scale_lr_to_effective_batch'
]
