"""The canonical scheme: official MAE (`models_mae.py`, `models_vit.py`), timm `VisionTransformer` and this
project's models all name the encoder alike (`patch_embed.proj`, `blocks.N.norm1`, ...), so their files load with
no renaming. The encoder sits at '' (official, timm), 'mae.' (our pretrainer) or 'backbone.' (our detectors,
segmentors, pose estimators, classifiers). The label says only how the file is wrapped.

Classifier heads of these files (`fc_norm`, `head`) are read by `split_classifier_head`.
"""
from typing import Any, Dict, Mapping, Tuple

import torch

from . import CheckpointFormat, detect, register_format
from .common import CANONICAL_MARKER, split_canonical, unwrap_checkpoint


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


# Canonical head names (official models_vit.py and timm): `fc_norm` (the LayerNorm of global pooling) and
# `head` (the linear layer); a linear probe's `head.0` (BatchNorm1d buffers) and `head.1` (linear) as official
# main_linprobe.py and our ViTClassifier save them.
CLASSIFIER_HEAD_NAMES = ('fc_norm.', 'head.')


def split_classifier_head(checkpoint: Mapping[str, Any]) -> Dict[str, Tuple[str, torch.Tensor]]:
    """The classifier head of a canonical-scheme checkpoint: canonical name -> (key in the file, tensor).

    The head sits beside the encoder: at the encoder's own prefix in official and timm files (`fc_norm.*`,
    `head.*` next to `blocks.*`), and beside the `backbone.` prefix in our ViTClassifier checkpoints
    (`backbone.blocks.*`, `head.*`). Detector and segmentor heads (`rpn_head.*`, `decode_head.*`) are no
    classifier heads. Other formats name their heads otherwise and give {} (their encoders still load).

    Args:
        checkpoint: a loaded checkpoint or a bare state dict.
    """
    state_dict, _ = unwrap_checkpoint(checkpoint)
    tensors = {key: value for key, value in state_dict.items() if isinstance(value, torch.Tensor)}
    found = detect(tensors)
    if found is None or found[0].name != 'canonical':
        return {}
    prefix = found[1]
    outer = prefix[:-len('backbone.')] if prefix.endswith('backbone.') else prefix
    return {key[len(outer):]: (key, value) for key, value in tensors.items()
            if key.startswith(outer) and key[len(outer):].startswith(CLASSIFIER_HEAD_NAMES)}


register_format(CheckpointFormat(
    name='canonical',
    marker=CANONICAL_MARKER,
    rename=split_canonical,
    labels=('official_mae', 'mae_transfer', 'timm'),
    label=canonical_label,
    without_cls_row=('timm',),  # timm `no_embed_class=True`; every other file stores the cls row
))
