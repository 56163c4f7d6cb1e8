"""ViTPose's released pose models (ViTAE-Transformer/ViTPose, mmpose 0.x): `mmpose/models/backbones/vit.py` +
`TopdownHeatmapSimpleHead`, checked against the repository at commit 33f49cf1f24077ec175cef0990bd25d2746c4898.

A released file is {'state_dict': {...}, 'meta': ...} with `backbone.patch_embed.proj`, `backbone.pos_embed`
[1, 1 + 16 * 12, D] (cls row first, learned, non-square), `backbone.blocks.N.*` in the canonical block names,
`backbone.last_norm` (the final LayerNorm), no cls token (ViTPose drops it but adds its position to every patch),
and the classic head `keypoint_head.deconv_layers.{0,1,3,4}.*` / `keypoint_head.final_layer.*`, which are our
`HeatmapHead`'s names under `head.`. Canonical marker; told apart from plain canonical files by `last_norm` or
`keypoint_head`, and ranked above them.
"""
from typing import Any, Dict, Mapping, Sequence

import torch

from . import CheckpointFormat, register_format
from .common import CANONICAL_MARKER, EncoderKeys, rename_prefixes, split_canonical, vitpose_grid, with_zero_cls_token
from .mmpose_vitpose import is_mmpose_vitpose, rename_mmpose_backbone_in_place

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


def rename_vitpose_model(state_dict: Dict[str, Any], prefix: str = '') -> bool:
    """Rename, in place, a whole ViTPose model state dict (backbone + classic or simple head) to our
    `TopdownPoseEstimator`'s keys: `keypoint_head.*` -> `head.*` (same module names), `backbone.last_norm.*` ->
    `backbone.norm.*`, and a zero `backbone.cls_token` (unused: the pose backbone keeps no cls token). An mmpose
    1.x ViTPose state dict (`head.*` already ours) gets its backbone renamed by `rename_mmpose_vitpose`.

    Args:
        state_dict: the state dict being loaded (mutated).
        prefix: the estimator's prefix in it ('' for a whole-model load).

    Returns:
        whether it was a ViTPose state dict (nothing is changed otherwise).
    """
    backbone = prefix + VITPOSE_BACKBONE_PREFIX
    if is_mmpose_vitpose(list(state_dict), backbone) and prefix + 'head.final_layer.weight' in state_dict:
        rename_mmpose_backbone_in_place(state_dict, backbone)  # head.* already has our names
        return True
    if not is_vitpose(list(state_dict), backbone) or prefix + 'head.final_layer.weight' in state_dict:
        return False
    renamed = rename_prefixes(state_dict, {prefix + VITPOSE_HEAD_PREFIX: prefix + 'head.',
                                           backbone + 'last_norm.': backbone + 'norm.'})
    state_dict.clear()
    state_dict.update(renamed)
    pos_embed = state_dict.get(backbone + 'pos_embed')
    if pos_embed is not None and backbone + 'cls_token' not in state_dict:
        state_dict[backbone + 'cls_token'] = pos_embed.new_zeros(1, 1, pos_embed.shape[-1])
    return True


register_format(CheckpointFormat(name='vitpose', marker=CANONICAL_MARKER, rename=rename_vitpose, matches=is_vitpose,
                                 priority=10, whole_model=vitpose_whole_model))
