"""mae_transfer: MAE pretraining for Vision Transformers and transfer to detection, segmentation, pose and
classification on the OpenMMLab stack.

Importing the package registers the checkpoint allowlist (checkpoint/safe_load.py), makes mmengine's checkpoint
writes atomic (checkpoint/files.py) and registers the registries;
models, datasets and hooks are imported lazily by the registries on first use.
"""
from . import registry  # noqa: F401
from . import checkpoint  # allowlist for torch.load and mmengine's local loader, needed before any resume
from .version import __version__

checkpoint.install_atomic_checkpoint_io()  # checkpoints are written to a temporary file and renamed into place

__all__ = ['__version__']
