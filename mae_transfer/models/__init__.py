"""Model code: the arch table, ViT layers, the MAE core and the registered wrappers.

This package's own import is light on purpose: `import mae_transfer` reaches `models.arch` and `models.layers`
(pure tensor code the checkpoint package reads) and should not pay for every registered model. Nothing here
imports `mae_transfer.checkpoint`: weights reach the registered models through mmengine's entries, which
`checkpoint.mmengine_bridge` routes to `load_weights`. The registry imports the registering sub-packages itself
(`mae_transfer.registry`, `locations`), and the names below are loaded on first access
(`from mae_transfer.models import MAEViT` works as usual).
"""
import importlib
from typing import Any

# public name -> sub-module that defines it
_EXPORTS = {
    'ARCHS': 'arch', 'ViTArch': 'arch', 'find_arch': 'arch', 'get_arch': 'arch',
    'Attention': 'layers', 'Block': 'layers', 'ViTEncoder': 'layers', 'WindowRelPosAttention': 'layers',
    'get_2d_sincos_pos_embed': 'layers', 'resize_pos_embed': 'layers',
    'MaskedAutoencoderViT': 'mae', 'MAE_FACTORIES': 'mae', 'mae_vit': 'mae', 'patchify': 'mae',
    'unpatchify': 'mae', 'mae_vit_tiny_patch16': 'mae', 'mae_vit_small_patch16': 'mae',
    'mae_vit_base_patch16': 'mae', 'mae_vit_large_patch16': 'mae', 'mae_vit_huge_patch14': 'mae',
    'MAEPretrainer': 'mae_pretrainer',
    'MAEViT': 'backbones',
    'LayerNorm2d': 'necks', 'SimpleFPN': 'necks',
    'HeatmapHead': 'heads', 'SimpleHeatmapHead': 'heads', 'KeypointMSELoss': 'heads',
    'TopdownPoseEstimator': 'pose',
    'ViTClassifier': 'classifiers',
}
# the sub-packages that register classes into mae_transfer.registry (its `locations`)
REGISTERING_MODULES = ('backbones', 'necks', 'heads', 'pose', 'classifiers', 'mae_pretrainer')


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    return getattr(importlib.import_module(f'.{_EXPORTS[name]}', __name__), name)


def __dir__() -> list:
    return sorted(list(globals()) + list(_EXPORTS))


__all__ = sorted(_EXPORTS)
