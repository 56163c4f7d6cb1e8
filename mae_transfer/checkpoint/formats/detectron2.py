"""detectron2 ViTDet (facebookresearch/detectron2 projects/ViTDet, model zoo `model_final_*.pkl`), checked
against detectron2 at commit 02b5c4e295e990042a714712c21dc79b731e8833.

A released file is a plain pickle {'model': {name: numpy array}, '__author__': ..., 'matching_heuristics': ...},
read here without running code (`safe_pickle_load`: numpy arrays and plain containers only). The backbone
`backbone.net.*` (detectron2's `modeling/backbone/vit.py` ViT) uses the canonical names (`patch_embed.proj`,
`pos_embed` with the cls row, `blocks.N.{norm1,attn.qkv,attn.proj,attn.rel_pos_h,attn.rel_pos_w,norm2,mlp.fc1,
mlp.fc2}`), with no cls token and no final norm. The pyramid `backbone.simfp_{2,3,4,5}` (SimpleFeaturePyramid,
scale factors 4, 2, 1, 0.5) is an nn.Sequential per level: stem layers (x4: ConvTranspose, LayerNorm, GELU,
ConvTranspose; x2: ConvTranspose; x1: none; x0.5: MaxPool), then detectron2 `Conv2d`s with a `norm` (1x1, then
3x3; no bias). The reader gives the mmdet layout for these (`backbone.*` MAEViT, `neck.*` SimpleFPN) and keeps
detectron2's names on its Mask R-CNN heads (`proposal_generator.rpn_head.*`, `roi_heads.{box_head,box_predictor,
mask_head}.*`, which also tell the format apart); `whole_model` places them in mmdet's RPNHead / Shared4Conv1FCBBoxHead
/ FCNMaskHead (detectron2_heads.py: names only, the layouts agree). Whatever else a file holds (a cascade's
`roi_heads.box_head.N.*`) stays among the dropped keys, named in the load report.
"""
import codecs
import collections
import os.path as osp
import pickle
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from ..safe_load import CorruptCheckpointError, UnsafeCheckpointError
from . import CheckpointFormat, register_format
from .common import CANONICAL_MARKER, UnknownCheckpointFormatError, split_canonical, with_zero_cls_token
from .detectron2_heads import rename_detectron2_head

DETECTRON2_FORMAT = 'detectron2'
DETECTRON2_SUFFIX = '.pkl'
DETECTRON2_BACKBONE_PREFIX = 'backbone.net.'
DETECTRON2_HEADS = ('proposal_generator.', 'roi_heads.')  # detectron2's own names: mmdet has rpn_head / roi_head
DETECTRON2_PYRAMID_KEY = re.compile(r'^backbone\.simfp_(\d+)\.(\d+)\.(.+)$')
# stage (stride 2 ** stage from a stride-16 map) -> (scale factor, number of stem layers before the 1x1 conv)
DETECTRON2_PYRAMID_STAGES = {2: (4.0, 4), 3: (2.0, 1), 4: (1.0, 0), 5: (0.5, 1)}

# (module, name) pairs a detectron2 pickle may name: numpy's array / scalar / dtype reconstructors (numpy 1.x
# spells the module numpy.core, 2.x numpy._core), OrderedDict, and `_codecs.encode`, which protocol-2 pickles
# use to spell bytes. Everything else (a class, a function) is refused by name.
_NUMPY_CORE = getattr(np, '_core', None) or np.core
NUMPY_PICKLE_GLOBALS = {
    **{(module, name): getattr(_NUMPY_CORE, 'multiarray').__dict__[name]
       for module in ('numpy.core.multiarray', 'numpy._core.multiarray') for name in ('_reconstruct', 'scalar')},
    **{(module, '_frombuffer'): getattr(_NUMPY_CORE, 'numeric')._frombuffer
       for module in ('numpy.core.numeric', 'numpy._core.numeric')},  # arrays pickled with protocol 5
    ('numpy', 'ndarray'): np.ndarray, ('numpy', 'dtype'): np.dtype,
    **{('numpy.dtypes', name): getattr(np.dtypes, name) for name in dir(np.dtypes) if name.endswith('DType')},
    ('collections', 'OrderedDict'): collections.OrderedDict, ('_codecs', 'encode'): codecs.encode,
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits numpy arrays, numpy scalars and dtypes, and plain containers; refuses any other global."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in NUMPY_PICKLE_GLOBALS:
            return NUMPY_PICKLE_GLOBALS[(module, name)]
        raise UnsafeCheckpointError(f'{module}.{name}')


def safe_pickle_load(path: str) -> object:
    """Unpickle a detectron2 checkpoint (`.pkl`) admitting only numpy arrays and plain containers.

    Raises:
        UnsafeCheckpointError: the file names another class or function (named in the message).
        CorruptCheckpointError: the file is empty, truncated or not a pickle.
    """
    try:
        with open(path, 'rb') as handle:
            return _NumpyOnlyUnpickler(handle, encoding='latin1').load()  # latin1: Python 2 era files
    except UnsafeCheckpointError as error:
        raise UnsafeCheckpointError(
            f'Refusing to load {path}: this detectron2 checkpoint contains {error}, and unpickling arbitrary '
            'objects can run code. mae_transfer reads detectron2 checkpoints with numpy arrays and plain '
            'containers only.') from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as error:
        size = osp.getsize(path) if osp.isfile(path) else 0
        raise CorruptCheckpointError(
            f'{path} ({size} bytes) is not a readable detectron2 checkpoint: it is empty, truncated or another '
            f'kind of file. pickle said: {type(error).__name__}: {str(error)[:200]}') from error


def is_detectron2(keys: Sequence[str], prefix: Optional[str] = None) -> bool:
    """A detectron2 ViTDet state dict: as released (its ViT under `backbone.net.`), or as `detectron2_to_mmdet`
    gives it (the ViT under `backbone.` beside detectron2's own heads).

    Args:
        keys: state dict keys.
        prefix: the encoder prefix found for the canonical marker (None: look for the released layout only).
    """
    if prefix is None or prefix == DETECTRON2_BACKBONE_PREFIX:
        return any(key.startswith(DETECTRON2_BACKBONE_PREFIX + 'patch_embed.') for key in keys)
    return prefix == 'backbone.' and any(key.startswith(DETECTRON2_HEADS) for key in keys)


def rename_detectron2_pyramid(key: str, scale_factors: Tuple[float, ...] = (4.0, 2.0, 1.0, 0.5)) -> Optional[str]:
    """Our `SimpleFPN` name of detectron2's `backbone.simfp_*` key (None for a key that is not the pyramid's).

    Args:
        key: a detectron2 key.
        scale_factors: our SimpleFPN's scale factors (the level index is the position of the stage's scale).
    """
    match = DETECTRON2_PYRAMID_KEY.match(key)
    if match is None:
        return None
    stage, layer, rest = int(match.group(1)), int(match.group(2)), match.group(3)
    if stage not in DETECTRON2_PYRAMID_STAGES or DETECTRON2_PYRAMID_STAGES[stage][0] not in scale_factors:
        raise UnknownCheckpointFormatError(f'detectron2 checkpoint: {key} is a pyramid level (stride '
                                           f'{2 ** stage}) that SimpleFPN{tuple(scale_factors)} does not have')
    scale, stem_layers = DETECTRON2_PYRAMID_STAGES[stage]
    level = list(scale_factors).index(scale)
    if layer < stem_layers:  # the x4 stem is a Sequential of 4 layers; the x2 stem a single ConvTranspose2d
        return f'stems.{level}.{layer}.{rest}' if stem_layers > 1 else f'stems.{level}.{rest}'
    conv = {stem_layers: 'lateral_convs', stem_layers + 1: 'output_convs'}.get(layer)
    if conv is None:
        raise UnknownCheckpointFormatError(f'detectron2 checkpoint: {key} has no SimpleFPN counterpart')
    # detectron2's Conv2d(norm=...) keeps `weight` (and `bias`) itself and the norm as `.norm`; ours is
    # Sequential(conv, LayerNorm2d)
    return f'{conv}.{level}.1.{rest[len("norm."):]}' if rest.startswith('norm.') else f'{conv}.{level}.0.{rest}'


def detectron2_to_mmdet(model: Mapping[str, Any]) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """detectron2 ViTDet weights -> (mmdet-layout state dict for MAEViT + SimpleFPN, detectron2 keys left out).

    The ViT goes to `backbone.<canonical name>`, with a zero `cls_token` added (detectron2's ViT has none; the
    ViTDet configs keep the token out of the sequence, so it is never used); the pyramid goes to `neck.*`.
    detectron2's RPN and RoI heads keep their names (`proposal_generator.*`, `roi_heads.*`, which no mmdet module
    has: the format's `whole_model` renames them, so that the load report names each by its key in the file) and
    are also returned.

    Args:
        model: the `'model'` dict of the file, numpy arrays or tensors.
    """
    state_dict: Dict[str, torch.Tensor] = {}
    left_out = []
    for key, value in model.items():
        tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
        if key.startswith(DETECTRON2_BACKBONE_PREFIX):
            state_dict['backbone.' + key[len(DETECTRON2_BACKBONE_PREFIX):]] = tensor
        elif (name := rename_detectron2_pyramid(key)) is not None:
            state_dict['neck.' + name] = tensor
        else:
            left_out.append(key)
            state_dict[key] = tensor
    patch = state_dict.get('backbone.patch_embed.proj.weight')  # [D, C, p, p]
    if patch is None:
        raise UnknownCheckpointFormatError('detectron2 checkpoint without backbone.net.patch_embed.proj.weight: '
                                           'not a ViTDet model')
    state_dict.setdefault('backbone.cls_token', torch.zeros(1, 1, patch.shape[0], dtype=patch.dtype))
    return state_dict, left_out


def load_detectron2_checkpoint(path: str) -> dict:
    """A detectron2 ViTDet `.pkl` as an mmdet checkpoint: {'state_dict': MAEViT `backbone.*` + SimpleFPN
    `neck.*` (+ detectron2's heads under their own names), 'meta': {'source_format': 'detectron2',
    'dropped_keys': detectron2's head keys}}."""
    loaded = safe_pickle_load(path)
    model = loaded.get('model') if isinstance(loaded, dict) else None
    if not isinstance(model, dict):
        raise UnknownCheckpointFormatError(f'{path}: a detectron2 checkpoint keeps its weights under "model"; '
                                           f'found {sorted(loaded)[:8] if isinstance(loaded, dict) else loaded}')
    state_dict, left_out = detectron2_to_mmdet(model)
    return {'state_dict': state_dict, 'meta': {'source_format': DETECTRON2_FORMAT, 'dropped_keys': left_out}}


def detectron2_whole_model(parts: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The pyramid (`backbone.simfp_*` as released, `neck.*` as read) in SimpleFPN's names and detectron2's Mask
    R-CNN heads in mmdet's (`rpn_head.*`, `roi_head.bbox_head.*`, `roi_head.mask_head.*`); other detectron2 head
    keys (a cascade's stages) have no counterpart in our configs and are left out."""
    out = {}
    for key, value in parts.items():
        if key.startswith(DETECTRON2_HEADS):
            name = rename_detectron2_head(key)
            if name is not None:
                out[name] = value
        else:
            name = rename_detectron2_pyramid(key)
            out[key if name is None else 'neck.' + name] = value
    return out


register_format(CheckpointFormat(
    name=DETECTRON2_FORMAT, marker=CANONICAL_MARKER, matches=is_detectron2, priority=10,
    rename=lambda state_dict, prefix: with_zero_cls_token(split_canonical(state_dict, prefix)),
    whole_model=detectron2_whole_model, read=load_detectron2_checkpoint, suffixes=(DETECTRON2_SUFFIX,)))
