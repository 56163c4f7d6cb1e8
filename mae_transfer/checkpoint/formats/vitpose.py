"""ViTPose's released pose models (ViTAE-Transformer/ViTPose, mmpose 0.x): `mmpose/models/backbones/vit.py` +
`TopdownHeatmapSimpleHead`, checked against the repository at commit 33f49cf1f24077ec175cef0990bd25d2746c4898.

A released file is {'state_dict': {...}, 'meta': ...} with `backbone.patch_embed.proj`, `backbone.pos_embed`
[1, 1 + 16 * 12, D] (cls row first, learned, non-square), `backbone.blocks.N.*` in the canonical block names,
`backbone.last_norm` (the final LayerNorm), no cls token (ViTPose drops it but adds its position to every patch),
and the classic head `keypoint_head.deconv_layers.{0,1,3,4}.*` / `keypoint_head.final_layer.*`, which are our
`HeatmapHead`'s names under `head.`. Canonical marker; told apart from plain canonical files by `last_norm` or
`keypoint_head`, and ranked above them.
"""
from typing import Dict, Mapping, Sequence

import torch

from . import CheckpointFormat, register_format
from .common import CANONICAL_MARKER, EncoderKeys, rename_prefixes, split_canonical, vitpose_grid, with_zero_cls_token

VITPOSE_HEAD_PREFIX = 'keypoint_head.'
VITPOSE_BACKBONE_PREFIX = 'backbone.'


def is_vitpose(keys: Sequence[str], prefix: str) -> bool:
    """A canonical-scheme state dict is a ViTPose one: its encoder has ViTPose's `last_norm`, or the file holds
    ViTPose's `keypoint_head`.

    Args:
        keys: state dict keys.
        prefix: the encoder prefix found for the canonical marker.
    """
    return (f'{prefix}last_norm.weight' in set(keys)
            or (prefix == VITPOSE_BACKBONE_PREFIX and any(k.startswith(VITPOSE_HEAD_PREFIX) for k in keys)))


def rename_vitpose(state_dict: Mapping[str, torch.Tensor], prefix: str) -> EncoderKeys:
    """ViTPose backbone -> canonical names: `last_norm` -> `norm`, a zero `cls_token` (ViTPose has none; our
    pose configs keep the token out of the sequence and only add its pos_embed row), the pos_embed grid from
    ViTPose's 4:3 inputs. The head and anything outside the backbone are dropped.

    Args:
        state_dict: the whole model's state dict.
        prefix: where the backbone sits ('backbone.').
    """
    result = with_zero_cls_token(split_canonical(rename_prefixes(state_dict, {prefix + 'last_norm.': prefix + 'norm.'}),
                                                 prefix))
    pos_embed = result.state_dict.get('pos_embed')
    if pos_embed is not None:
        result.grid_size = vitpose_grid(pos_embed.shape[-2] - 1)
    return result


def vitpose_whole_model(parts: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """`keypoint_head.*` -> our pose estimator's `head.*` (same module names below it)."""
    return rename_prefixes(parts, {VITPOSE_HEAD_PREFIX: 'head.'})


register_format(CheckpointFormat(name='vitpose', marker=CANONICAL_MARKER, rename=rename_vitpose, matches=is_vitpose,
                                 priority=10, whole_model=vitpose_whole_model))
