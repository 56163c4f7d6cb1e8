"""mae_transfer: MAE pretraining for Vision Transformers and transfer to detection, segmentation, pose and
classification on the OpenMMLab stack.

Importing the package registers the checkpoint allowlist (engine/safe_load.py), makes mmengine's checkpoint
writes atomic (engine/atomic_save.py) and registers the registries;
models, datasets and hooks are imported lazily by the registries on first use.
"""
from . import registry  # noqa: F401
from .engine import atomic_save, safe_load  # noqa: F401  (allowlist for torch.load, needed before any resume)
from .version import __version__

atomic_save.install()  # checkpoints are written to a temporary file and renamed into place

__all__ = ['__version__']
