"""The reference backbones `benchmark backbone --reference ...` measures next to MAEViT, same input, same step.

- mmseg: mmseg 1.x's `mmseg.models.backbones.MAE` (installed with mmseg) as its configs/mae UperNet recipe builds
  it (`mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py` over `_base_/models/upernet_mae.py`): img_size 512,
  out_indices (3, 5, 7, 11), drop path 0.1, layer scale init_values 1.0, LayerNorm eps 1e-6, GELU.
- detectron2: ViTDet's `ViT` from a detectron2 *source checkout* (`detectron2/modeling/backbone/vit.py` and
  `utils.py`), as projects/ViTDet/configs/common/coco_loader_lsj + mask_rcnn_vitdet_b_100ep build it: 1024 px,
  window 14 with global blocks 2, 5, 8, 11 (ViT-B), rel-pos, drop path 0.1, LayerNorm eps 1e-6, abs pos-embed
  from a 224 pretraining grid. detectron2 is not built or installed for this: importing its `layers` package
  loads compiled ops, so the two files are loaded as modules on their own, with the few names they import from
  the rest of detectron2 (and fvcore) replaced by the minimal stand-ins of `_detectron2_stand_ins`. Those names
  serve the parts of vit.py the ViT backbone does not use (residual conv blocks, SimpleFeaturePyramid): the
  stand-ins raise if they are ever called. Nothing of detectron2 is copied here; the files are read from the
  checkout the user points at.
"""
import importlib.util
import os
import sys
import types
from contextlib import contextmanager
from functools import partial
from typing import Iterator, List, Sequence

import torch
from torch import nn

REFERENCES = ('mmseg', 'detectron2')
DETECTRON2_FILES = ('detectron2/modeling/backbone/utils.py', 'detectron2/modeling/backbone/vit.py')


class ReferenceUnavailable(RuntimeError):
    """The reference code cannot be loaded here (not installed, no checkout, ...); the message says why."""


def reference_outputs(outputs) -> List[torch.Tensor]:
    """The feature maps of any backbone's output: a tuple / list (mmseg, ours) or a dict (detectron2)."""
    return list(outputs.values()) if isinstance(outputs, dict) else list(outputs)


# ------------------------------------------------------------------------------------------------ mmseg

def build_mmseg_mae(arch: str, img_size: int, out_indices: Sequence[int], drop_path: float) -> nn.Module:
    """mmseg's MAE backbone with the UperNet recipe's options, at `arch`'s sizes and random weights."""
    from mae_transfer.models import get_arch
    try:
        from mmseg.models.backbones import MAE
    except ImportError as error:
        raise ReferenceUnavailable(f'mmseg is not importable: {error}') from error
    dims = get_arch(arch)
    return MAE(img_size=(img_size, img_size), patch_size=dims.patch_size, embed_dims=dims.embed_dim,
               num_layers=dims.depth, num_heads=dims.num_heads, mlp_ratio=4, out_indices=list(out_indices),
               attn_drop_rate=0.0, drop_path_rate=drop_path, norm_cfg=dict(type='LN', eps=1e-6),
               act_cfg=dict(type='GELU'), norm_eval=False, init_values=1.0)


# ------------------------------------------------------------------------------------------------ detectron2

def _unused(name: str):
    def stand_in(*args, **kwargs):
        raise NotImplementedError(f'{name} is a stand-in of the benchmark harness: the ViT backbone does not use it')
    return stand_in


def _detectron2_stand_ins() -> dict:
    """Module objects for the names vit.py imports from outside vit.py / utils.py: detectron2.layers
    (CNNBlockBase, Conv2d, get_norm), detectron2.modeling.backbone.fpn (_assert_strides_are_log2_contiguous),
    detectron2.modeling.backbone.backbone (Backbone: for the ViT only an nn.Module) and fvcore's weight_init."""
    def module(name: str, package: bool = False, **attributes) -> types.ModuleType:
        mod = types.ModuleType(name)
        if package:
            mod.__path__ = []  # a namespace for the submodules below, with nothing to import from disk
        mod.__dict__.update(attributes)
        return mod

    class Backbone(nn.Module):  # detectron2's Backbone is an nn.Module with shape metadata
        pass

    class CNNBlockBase(nn.Module):  # the base of ResBottleneckBlock, which the ViT backbone does not build
        def __init__(self, *args, **kwargs):
            raise NotImplementedError('CNNBlockBase is a stand-in of the benchmark harness')

    return {
        'fvcore': module('fvcore', package=True),
        'fvcore.nn': module('fvcore.nn', package=True),
        'fvcore.nn.weight_init': module('fvcore.nn.weight_init', c2_msra_fill=_unused('c2_msra_fill')),
        'detectron2': module('detectron2', package=True),
        'detectron2.layers': module('detectron2.layers', CNNBlockBase=CNNBlockBase, Conv2d=_unused('Conv2d'),
                                    get_norm=_unused('get_norm')),
        'detectron2.modeling': module('detectron2.modeling', package=True),
        'detectron2.modeling.backbone': module('detectron2.modeling.backbone', package=True),
        'detectron2.modeling.backbone.fpn': module(
            'detectron2.modeling.backbone.fpn',
            _assert_strides_are_log2_contiguous=_unused('_assert_strides_are_log2_contiguous')),
        'detectron2.modeling.backbone.backbone': module('detectron2.modeling.backbone.backbone',
                                                        Backbone=Backbone),
    }


@contextmanager
def _modules_in_place(modules: dict) -> Iterator[None]:
    """Put `modules` into sys.modules for the duration, then restore what was there (a real detectron2 or
    fvcore the process imported stays untouched afterwards)."""
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        yield
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


def load_detectron2_vit(root: str) -> types.ModuleType:
    """detectron2's vit.py (with its utils.py) from the source checkout at `root`, as a module.

    Raises:
        ReferenceUnavailable: `root` lacks the two files, or they do not load.
    """
    paths = [os.path.join(root, name) for name in DETECTRON2_FILES]
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        raise ReferenceUnavailable(f'no detectron2 source checkout at {root!r}: {", ".join(missing)} missing')
    stand_ins = _detectron2_stand_ins()
    loaded = {}
    with _modules_in_place(stand_ins):
        for path, name in zip(paths, ('detectron2.modeling.backbone.utils', 'detectron2.modeling.backbone.vit')):
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # vit.py's `from .utils import ...` finds the utils loaded just before
            stand_ins[name] = module  # ... and both leave sys.modules with the stand-ins
            try:
                spec.loader.exec_module(module)
            except Exception as error:  # an import of a detectron2 version the stand-ins do not cover
                raise ReferenceUnavailable(f'{path} does not load with the stand-ins: {error!r}') from error
            loaded[name] = module
    return loaded['detectron2.modeling.backbone.vit']


def build_detectron2_vit(root: str, arch: str, img_size: int, window_size: int, global_blocks: Sequence[int],
                         drop_path: float, use_rel_pos: bool = True) -> nn.Module:
    """ViTDet's ViT at `arch`'s sizes with random weights; window_size 0: every block global."""
    from mae_transfer.models import get_arch
    dims = get_arch(arch)
    vit = load_detectron2_vit(root)
    window_blocks = [] if not window_size else [i for i in range(dims.depth) if i not in set(global_blocks)]
    return vit.ViT(img_size=img_size, patch_size=dims.patch_size, embed_dim=dims.embed_dim, depth=dims.depth,
                   num_heads=dims.num_heads, drop_path_rate=drop_path, window_size=window_size, mlp_ratio=4,
                   qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6), window_block_indexes=window_blocks,
                   residual_block_indexes=[], use_rel_pos=use_rel_pos, out_feature='last_feat')


__all__ = ['REFERENCES', 'ReferenceUnavailable', 'build_detectron2_vit', 'build_mmseg_mae', 'load_detectron2_vit',
           'reference_outputs']
