"""mmpretrain `VisionTransformer` / `MAEViT` (also mmseg's `VisionTransformer`), usually under `backbone.`.

Key names checked against mmpretrain's `vision_transformer.py`: layers ln1 / attn / ln2 / ffn with mmcv's FFN
`layers.0.0` and `layers.1`; the final norm is `ln1`, and `ln2` only normalises the averaged feature map (the
counterpart of timm's `fc_norm`, dropped with the heads). An MAE pretraining file keeps its decoder under
`neck.decoder_*` / `neck.mask_token`. Necks and heads keep their names (`whole_model` is the identity).
"""
import re
from typing import Mapping

import torch

from . import CheckpointFormat, register_format
from .common import MMPRETRAIN_MARKER, EncoderKeys, refuse_unplaced, under_prefix

MMPRETRAIN_TOP = {
    'cls_token': 'cls_token',
    'pos_embed': 'pos_embed',
    'patch_embed.projection.weight': 'patch_embed.proj.weight',
    'patch_embed.projection.bias': 'patch_embed.proj.bias',
    'ln1.weight': 'norm.weight',  # `final_norm=True`
    'ln1.bias': 'norm.bias',
}
MMPRETRAIN_BLOCK = {
    'ln1': 'norm1',
    'attn.qkv': 'attn.qkv',
    'attn.proj': 'attn.proj',
    'ln2': 'norm2',
    'ffn.layers.0.0': 'mlp.fc1',  # mmcv FFN: layers = [Sequential(fc1, act, drop), fc2, drop]
    'ffn.layers.1': 'mlp.fc2',
}
MMPRETRAIN_LAYER_KEY = re.compile(r'^layers\.(\d+)\.(.+)\.(weight|bias)$')


def rename_mmpretrain(state_dict: Mapping[str, torch.Tensor], prefix: str) -> EncoderKeys:
    """mmpretrain `VisionTransformer` / `MAEViT` (also mmseg's ViT) -> canonical names.

    `ln2` (the norm of `out_type='avg_featmap'`) is dropped with the heads. Layer scale (`gamma1`, `gamma2`) and
    `pre_norm` have no counterpart in our encoder and are refused.

    Args:
        state_dict: the whole model's state dict.
        prefix: where the backbone sits (usually 'backbone.').
    """
    result = EncoderKeys()
    unplaced = []
    for key, name, value in under_prefix(state_dict, prefix, result.dropped):
        if name in MMPRETRAIN_TOP:
            result.state_dict[MMPRETRAIN_TOP[name]] = value
        elif name.startswith('ln2.'):
            result.dropped.append(key)
        elif (layer := MMPRETRAIN_LAYER_KEY.match(name)) and layer.group(2) in MMPRETRAIN_BLOCK:
            index, module, param = layer.groups()
            result.state_dict[f'blocks.{index}.{MMPRETRAIN_BLOCK[module]}.{param}'] = value
        else:
            unplaced.append(key)
    refuse_unplaced(unplaced, 'mmpretrain')
    return result


# every file with mmpretrain's patch embedding that no more specific format (mmseg BEiT, mmpose ViTPose) claims
register_format(CheckpointFormat(name='mmpretrain', marker=MMPRETRAIN_MARKER, rename=rename_mmpretrain))
