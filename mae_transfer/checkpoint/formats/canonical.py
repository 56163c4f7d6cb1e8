"""The canonical scheme: official MAE (`models_mae.py`, `models_vit.py`), timm `VisionTransformer` and this
project's models all name the encoder alike (`patch_embed.proj`, `blocks.N.norm1`, ...), so their files load with
no renaming. The encoder sits at '' (official, timm), 'mae.' (our pretrainer) or 'backbone.' (our detectors,
segmentors, pose estimators, classifiers). The label says only how the file is wrapped.

Classifier heads of these files (`fc_norm`, `head`) become `Canonical.parts` under the same names.
"""
from typing import Any, Mapping

from . import CheckpointFormat, register_format
from .common import CANONICAL_MARKER, split_canonical


def canonical_label(container: str, prefix: str, checkpoint: Mapping[str, Any], ours: bool) -> str:
    """Name the source of a canonical-scheme file from its wrapping (the conversion does not depend on it).

    Args:
        container: where the state dict sat ('model', 'state_dict', 'module' or '').
        prefix: the encoder prefix.
        checkpoint: the loaded file.
        ours: the file was written by `save_encoder_checkpoint`.
    """
    if ours:
        return 'mae_transfer'
    if container == 'model':
        return 'official_mae'
    if container == 'state_dict' and (prefix or isinstance(checkpoint.get('meta'), Mapping)):
        return 'mae_transfer'  # mmengine checkpoint of one of our models
    return 'timm'


register_format(CheckpointFormat(
    name='canonical',
    marker=CANONICAL_MARKER,
    rename=split_canonical,
    labels=('official_mae', 'mae_transfer', 'timm'),
    label=canonical_label,
    without_cls_row=('timm',),  # timm `no_embed_class=True`; every other file stores the cls row
))
