"""mae_transfer: MAE pretraining for Vision Transformers and transfer to detection, segmentation, pose and
classification on the OpenMMLab stack.

Importing the package registers the checkpoint allowlist (see engine/safe_load.py) and the registries;
models, datasets and hooks are imported lazily by the registries on first use.
"""
from . import registry  # noqa: F401
from .engine import safe_load  # noqa: F401  (allowlist for torch.load, needed before any resume)
from .version import __version__

__all__ = ['__version__']
