"""mmpose 1.x ViTPose (configs/body_2d_keypoint/topdown_heatmap/coco/td-hm_ViTPose-*_8xb64-210e_coco-256x192.py).

The backbone is mmpretrain's `VisionTransformer(with_cls_token=False, out_type='featmap', final_norm=True,
patch_cfg=dict(padding=2))`: mmpretrain's names (`patch_embed.projection`, `layers.N.*`, final norm `ln1`), no
`cls_token` and a `pos_embed` without cls row ([1, 16 * 12, D]; mmpretrain drops an MAE table's cls row at load
and adds nothing to the patches: a zero cls row in our layout). mmpose's `HeatmapHead` under `head.`
(`deconv_layers.{0,1,3,4}`, `final_layer`) has our names already, so `whole_model` is the identity.
"""
from typing import Mapping, Sequence

import torch

from . import CheckpointFormat, register_format
from .common import MMPRETRAIN_MARKER, EncoderKeys, vitpose_grid
from .mmpretrain import rename_mmpretrain
from .mmseg_beit import is_mmseg_beit


def is_mmpose_vitpose(keys: Sequence[str], prefix: str) -> bool:
    """An mmpretrain-scheme encoder with `pos_embed` but without cls token (`with_cls_token=False`: mmpose 1.x's
    ViTPose), and no BEiT keys (mmseg's BEiT has no `pos_embed`, but a file is never both)."""
    keys = set(keys)
    return (f'{prefix}{MMPRETRAIN_MARKER}' in keys and f'{prefix}pos_embed' in keys
            and f'{prefix}cls_token' not in keys and not is_mmseg_beit(keys, prefix))


def rename_mmpose_vitpose(state_dict: Mapping[str, torch.Tensor], prefix: str) -> EncoderKeys:
    """mmpose 1.x ViTPose backbone -> canonical names: mmpretrain's renaming, a zero cls row prepended to
    `pos_embed` and a zero `cls_token` (the pose configs add that zero row to the patches: mmpretrain's
    computation), the grid from ViTPose's 4:3 inputs.

    Args:
        state_dict: the whole model's state dict.
        prefix: where the backbone sits ('backbone.').
    """
    result = rename_mmpretrain(state_dict, prefix)
    pos_embed = result.state_dict.get('pos_embed')  # [1, L, D]: no cls row without cls token (num_extra_tokens 0)
    if pos_embed is not None and 'cls_token' not in result.state_dict:
        pos_embed = pos_embed.reshape(1, -1, pos_embed.shape[-1])
        result.grid_size = vitpose_grid(pos_embed.shape[1])  # None: square or guessed later
        zeros = pos_embed.new_zeros(1, 1, pos_embed.shape[-1])
        result.state_dict['pos_embed'] = torch.cat([zeros, pos_embed], dim=1)  # [1, 1 + L, D]
        result.state_dict['cls_token'] = zeros.clone()
    return result


register_format(CheckpointFormat(name='mmpose_vitpose', marker=MMPRETRAIN_MARKER, rename=rename_mmpose_vitpose,
                                 matches=is_mmpose_vitpose, priority=10))
