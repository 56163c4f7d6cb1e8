"""Model code. Importing this package registers every model class into mae_transfer.registry.MODELS."""
from .patch_stem import PatchStem

__all__ = ['PatchStem']
