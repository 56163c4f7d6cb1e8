"""Training machinery shared by every task: checkpoint safety (more to come: lr decay, hooks)."""
from .safe_load import UnsafeCheckpointError, safe_torch_load

__all__ = ['UnsafeCheckpointError', 'safe_torch_load']
