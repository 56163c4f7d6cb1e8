"""mmseg 1.2.2 `BEiT` and `MAE` backbones (mmseg/models/backbones/beit.py, mae.py; the MAE paper's ADE20K
setting), usually under `backbone.` of a segmentor.

mmpretrain's layer names (ln1 / attn / ln2 / ffn, `patch_embed.projection`, final norm `ln1`) plus layer scale
`gamma_1` / `gamma_2` and a relative position bias table per block; BEiT learns `q_bias` / `v_bias` beside a
bias-free qkv and has no `pos_embed`. Same marker as mmpretrain: told apart by the keys only it has (mmpretrain's
own BEiT, with `gamma_1.weight`, reads the same way), and ranked above mmpretrain and mmpose's ViTPose.
"""
import re
from typing import Dict, Mapping, Sequence

import torch

from ...models.layers.beit_attention import grid_of_table
from . import CheckpointFormat, register_format
from .common import MMPRETRAIN_MARKER, EncoderKeys, UnknownCheckpointFormatError, refuse_unplaced, under_prefix
from .mmpretrain import MMPRETRAIN_BLOCK, MMPRETRAIN_TOP

MMSEG_BEIT_ONLY_KEY = re.compile(r'^layers\.\d+\.(attn\.q_bias|gamma_1(\.weight)?|attn\.relative_position_bias_table)$')
MMSEG_BEIT_BLOCK = {f'{module}.{param}': f'{MMPRETRAIN_BLOCK[module]}.{param}' for module in MMPRETRAIN_BLOCK
                    for param in ('weight', 'bias')}
MMSEG_BEIT_BLOCK.update({'gamma_1': 'ls1.gamma', 'gamma_2': 'ls2.gamma', 'gamma_1.weight': 'ls1.gamma',
                         'gamma_2.weight': 'ls2.gamma',
                         'attn.relative_position_bias_table': 'attn.relative_position_bias_table'})
MMSEG_BEIT_LAYER_KEY = re.compile(r'^layers\.(\d+)\.(.+)$')


def is_mmseg_beit(keys: Sequence[str], prefix: str) -> bool:
    """Keys under `prefix` include BEiT-only names (q_bias, gamma_1, a rel-pos bias table)."""
    return any(key.startswith(prefix) and MMSEG_BEIT_ONLY_KEY.match(key[len(prefix):]) for key in keys)


def rename_mmseg_beit(state_dict: Mapping[str, torch.Tensor], prefix: str) -> EncoderKeys:
    """mmseg `MAE` / `BEiT` backbone -> canonical names (layer scale `ls1/ls2.gamma`, rel-pos bias tables kept).

    BEiT's `q_bias` / `v_bias` become the qkv bias `cat(q_bias, 0, v_bias)` (the same function; our key bias then
    starts at zero and may be fine-tuned). `relative_position_index` buffers are rebuilt by the model and
    dropped. BEiT has no absolute position embedding: a zero `pos_embed` (what adding none means) is written for
    the square grid its first table was built for.

    Args:
        state_dict: the whole model's state dict (a segmentor's, or a bare backbone's).
        prefix: where the backbone sits (usually 'backbone.').
    """
    result = EncoderKeys()
    qv_bias: Dict[str, Dict[str, torch.Tensor]] = {}  # block -> {q_bias, v_bias}
    unplaced = []
    for key, name, value in under_prefix(state_dict, prefix, result.dropped):
        layer = MMSEG_BEIT_LAYER_KEY.match(name)
        if name in MMPRETRAIN_TOP:
            result.state_dict[MMPRETRAIN_TOP[name]] = value
        elif layer and layer.group(2) in MMSEG_BEIT_BLOCK:
            index, part = layer.groups()
            result.state_dict[f'blocks.{index}.{MMSEG_BEIT_BLOCK[part]}'] = value
        elif layer and layer.group(2) in ('attn.q_bias', 'attn.v_bias'):
            qv_bias.setdefault(layer.group(1), {})[layer.group(2)[5:]] = value
        elif layer and layer.group(2) == 'attn.relative_position_index':
            result.dropped.append(key)
        else:
            unplaced.append(key)
    refuse_unplaced(unplaced, 'mmseg BEiT/MAE')
    for index, parts in sorted(qv_bias.items()):
        if set(parts) != {'q_bias', 'v_bias'} or f'blocks.{index}.attn.qkv.bias' in result.state_dict:
            raise UnknownCheckpointFormatError(f'mmseg BEiT block {index}: {sorted(parts)} do not make one qkv bias')
        # [D] each -> [3 * D] in qkv's (q, k, v) order, no key bias
        result.state_dict[f'blocks.{index}.attn.qkv.bias'] = torch.cat(
            [parts['q_bias'], torch.zeros_like(parts['v_bias']), parts['v_bias']])
    table = result.state_dict.get('blocks.0.attn.relative_position_bias_table')
    proj = result.state_dict.get('patch_embed.proj.weight')
    if 'pos_embed' not in result.state_dict and table is not None and proj is not None:
        grid_h, grid_w = grid_of_table(table.shape[0])
        result.state_dict['pos_embed'] = proj.new_zeros(1, 1 + grid_h * grid_w, proj.shape[0])  # [1, 1 + L, D]
    result.extra = [name for name in result.state_dict if name.endswith(('gamma', 'relative_position_bias_table'))]
    return result


register_format(CheckpointFormat(name='mmseg_beit', marker=MMPRETRAIN_MARKER, rename=rename_mmseg_beit,
                                 matches=is_mmseg_beit, priority=20))
