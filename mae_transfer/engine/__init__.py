"""Training machinery shared by every task: run safety, mixed precision, lr scaling, hooks (checkpoint
safety lives in `mae_transfer.checkpoint`)."""
from .bf16_optim_wrapper import Bf16MasterWeightsOptimWrapper, StepWeightCast
from .compile_hook import CompileHook, compile_target
from .distributed import CPUCompatibleDDP, prepare_cpu_distributed, unwrap_model
from .knn_monitor_hook import KNNMonitorHook, knn_accuracy
from .lars import LARS, Lars
from .layer_decay import LayerDecayOptimWrapperConstructor, get_layer_id
from .lr_scaling import effective_batch_size, scale_lr_to_effective_batch
from .nonfinite_loss_hook import NonFiniteLossError, NonFiniteLossHook
from .optim_wrappers import AutocastOptimWrapper
from .reconstruction_hook import ReconstructionHook
from .rng_state_hook import RNGStateHook, seed_worker
from .run_safety import add_run_safety
from .safe_checkpoint_hook import CheckpointSaveError, SafeCheckpointHook
from .sharding import STRATEGY_CHOICES, DeviceFSDP, ShapeAwareFSDPStrategy, full_parameters, use_sharded_strategy

__all__ = [
    'CheckpointSaveError', 'SafeCheckpointHook',
    'CompileHook', 'compile_target',
    'DeviceFSDP', 'STRATEGY_CHOICES', 'ShapeAwareFSDPStrategy', 'full_parameters', 'use_sharded_strategy',
    'LARS', 'Lars',
    'NonFiniteLossError', 'NonFiniteLossHook', 'RNGStateHook', 'add_run_safety', 'seed_worker',
    'AutocastOptimWrapper', 'CPUCompatibleDDP', 'KNNMonitorHook', 'LayerDecayOptimWrapperConstructor',
    'Bf16MasterWeightsOptimWrapper', 'StepWeightCast',
    'ReconstructionHook', 'effective_batch_size', 'get_layer_id', 'knn_accuracy', 'prepare_cpu_distributed',
    'scale_lr_to_effective_batch', 'unwrap_model'
]
