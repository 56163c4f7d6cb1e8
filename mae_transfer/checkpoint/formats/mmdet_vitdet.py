"""mmdet's own ViTDet release (open-mmlab/mmdetection `projects/ViTDet`, `vitdet_mask-rcnn_vit-b-mae_lsj-100e_*.pth`),
read at the v3.1.0 release commit f78af7785ada87f1ced75a2313746e4ba3149760 (tests/helpers/mmdet_vitdet.py rewrites
it as a reference).

The backbone `backbone.*` is a port of detectron2's ViT in the canonical names (`patch_embed.proj`, `pos_embed`
[1, 1 + 14 * 14, D] with the cls row, `blocks.N.{norm1,attn.qkv,attn.proj,attn.rel_pos_h,attn.rel_pos_w,norm2,
mlp.fc1,mlp.fc2}`), with no cls token and no final norm. Its `SimpleFPN` and the RoI heads name things their own way:

    neck.fpn1.{0,1,3}.*                  ConvT, LN2d, (GELU), ConvT  -> neck.stems.0.{0,1,3}.*
    neck.fpn2.0.*                        ConvT                       -> neck.stems.1.*
    neck.fpn3 / neck.fpn4                Identity / MaxPool          (no parameters)
    neck.lateral_convs.N.conv.weight     1x1, no bias                -> neck.lateral_convs.N.0.weight
    neck.lateral_convs.N.norm_layer.*    LN2d                        -> neck.lateral_convs.N.1.*
    neck.fpn_convs.N.conv.weight         3x3, no bias                -> neck.output_convs.N.0.weight
    neck.fpn_convs.N.norm_layer.*        LN2d                        -> neck.output_convs.N.1.*
    roi_head.bbox_head.shared_convs.N.norm_layer.*                   -> roi_head.bbox_head.shared_convs.N.ln.*
    roi_head.mask_head.convs.N.norm_layer.*                          -> roi_head.mask_head.convs.N.ln.*

mmcv's ConvModule names its norm by `infer_abbr` of the norm class: the project's `LN2d` (no nn.LayerNorm, no
'layer' in its name) becomes `norm_layer`, our `mae_transfer.LayerNorm2d` (an nn.LayerNorm) `ln`. The RPN
(`rpn_head.rpn_conv.{0,1}.conv`, no norm) and every other head key have our det configs' names already.
Canonical marker; told apart from plain canonical files by the project's neck keys, and ranked above them.
"""
import re
from typing import Dict, Sequence

import torch

from . import CheckpointFormat, register_format
from .common import CANONICAL_MARKER, split_canonical, with_zero_cls_token

MMDET_VITDET_FORMAT = 'mmdet_vitdet'
MMDET_VITDET_NECK_KEYS = ('neck.fpn1.', 'neck.fpn_convs.')  # the project's SimpleFPN; ours has neither
# (the project's name, ours); the first pattern that matches a key renames it
MMDET_VITDET_RENAMES = tuple((re.compile(pattern), ours) for pattern, ours in (
    (r'^neck\.fpn1\.(\d+)\.', r'neck.stems.0.\1.'),  # the x4 stem: our stems.0 is the same Sequential
    (r'^neck\.fpn2\.0\.', 'neck.stems.1.'),  # the x2 stem: our stems.1 is the bare ConvTranspose2d
    (r'^neck\.lateral_convs\.(\d+)\.conv\.', r'neck.lateral_convs.\1.0.'),
    (r'^neck\.lateral_convs\.(\d+)\.norm_layer\.', r'neck.lateral_convs.\1.1.'),
    (r'^neck\.fpn_convs\.(\d+)\.conv\.', r'neck.output_convs.\1.0.'),
    (r'^neck\.fpn_convs\.(\d+)\.norm_layer\.', r'neck.output_convs.\1.1.'),
    (r'^((rpn_head|roi_head)\..+)\.norm_layer\.', r'\1.ln.'),  # ConvModule norms of the heads
))


def is_mmdet_vitdet(keys: Sequence[str], prefix: str) -> bool:
    """A canonical-scheme ViT under `backbone.` beside the project's SimpleFPN (`neck.fpn1.*`, `neck.fpn_convs.*`).

    Args:
        keys: state dict keys.
        prefix: the encoder prefix found for the canonical marker.
    """
    return prefix == 'backbone.' and any(key.startswith(MMDET_VITDET_NECK_KEYS) for key in keys)


def rename_mmdet_vitdet_key(key: str) -> str:
    """Our det config's name of a key of the project's Mask R-CNN outside its backbone (unchanged when the names
    agree).

    Args:
        key: a key of the project's model, e.g. 'neck.fpn_convs.2.norm_layer.weight'.
    """
    for pattern, ours in MMDET_VITDET_RENAMES:
        if pattern.match(key):
            return pattern.sub(ours, key, count=1)
    return key


def mmdet_vitdet_whole_model(parts: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The project's neck and RoI-head keys in our det config's names (see the module docstring)."""
    return {rename_mmdet_vitdet_key(key): value for key, value in parts.items()}


register_format(CheckpointFormat(
    name=MMDET_VITDET_FORMAT, marker=CANONICAL_MARKER, matches=is_mmdet_vitdet, priority=10,
    rename=lambda state_dict, prefix: with_zero_cls_token(split_canonical(state_dict, prefix)),
    whole_model=mmdet_vitdet_whole_model))
