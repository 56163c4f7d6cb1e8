"""Write a mae_transfer ViT's weights in mmseg 1.2.2's `MAE` / `BEiT` backbone naming (the inverse of
`formats.rename_mmseg_beit`), for tests of that format."""
from typing import Dict

import torch

StateDict = Dict[str, torch.Tensor]
TOP = {'patch_embed.proj.weight': 'patch_embed.projection.weight',
       'patch_embed.proj.bias': 'patch_embed.projection.bias', 'norm.weight': 'ln1.weight', 'norm.bias': 'ln1.bias'}
BLOCK = {'norm1': 'ln1', 'norm2': 'ln2', 'mlp.fc1': 'ffn.layers.0.0', 'mlp.fc2': 'ffn.layers.1',
         'attn.qkv': 'attn.qkv', 'attn.proj': 'attn.proj', 'ls1': 'gamma_1', 'ls2': 'gamma_2', 'attn': 'attn'}


def to_mmseg_beit(encoder: StateDict, beit: bool = False) -> StateDict:
    """Canonical names -> mmseg `MAE` names (full qkv bias, `pos_embed`), or `BEiT` names with `beit=True`
    (`q_bias` / `v_bias` beside a bias-free qkv, whose key part must be zero; no `pos_embed`, which must be zero).
    Adds the `relative_position_index` buffers mmseg saves (their values are never read)."""
    out = {}
    for key, value in encoder.items():
        if key in TOP:
            out[TOP[key]] = value
        elif key.startswith('blocks.'):
            _, index, rest = key.split('.', 2)
            module, _, param = rest.rpartition('.')
            if beit and rest == 'attn.qkv.bias':
                q_bias, k_bias, v_bias = value.chunk(3)
                assert not k_bias.any(), 'BEiT has no key bias'
                out[f'layers.{index}.attn.q_bias'], out[f'layers.{index}.attn.v_bias'] = q_bias, v_bias
                continue
            if param == 'gamma':  # ls1.gamma -> gamma_1 (a bare parameter in mmseg)
                out[f'layers.{index}.{BLOCK[module]}'] = value
                continue
            out[f'layers.{index}.{BLOCK[module]}.{param}'] = value
            if param == 'relative_position_bias_table':
                length = 1 + int(round(((value.shape[0] - 3) ** 0.5 + 1) / 2)) ** 2
                out[f'layers.{index}.attn.relative_position_index'] = torch.zeros(length, length, dtype=torch.long)
        elif key == 'pos_embed' and beit:
            assert not value.any(), 'BEiT has no absolute position embedding'
        else:
            out[key] = value
    return out
