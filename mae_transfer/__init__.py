"""mae_transfer: MAE pretraining for Vision Transformers and transfer to detection, segmentation, pose and
classification on the OpenMMLab stack.

Importing the package registers the registries and installs `checkpoint.mmengine_bridge`, the one place where
mmengine functions are replaced: weights of any supported format load through `checkpoint.load_weights` from
mmengine's own entries (`load_from`, `load_checkpoint`, `init_cfg` Pretrained), files are read safely (the
checkpoint allowlist) and written atomically. Models, datasets and hooks are imported lazily by the registries
on first use.
"""
from .utils.user_errors import silence_known_dependency_noise

silence_known_dependency_noise()  # before mmengine is imported: its pkg_resources warnings hide the first line

from . import registry  # noqa: E402,F401
from . import checkpoint  # noqa: E402  (allowlist for torch.load, needed before any resume)
from .version import __version__  # noqa: E402

checkpoint.mmengine_bridge.install()

__all__ = ['__version__']
