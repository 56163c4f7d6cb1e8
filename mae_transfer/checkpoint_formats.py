"""The key schemes of the ViT checkpoints we read, and their renaming to the canonical one.

Canonical (official MAE / timm) encoder names: `cls_token`, `pos_embed`, `patch_embed.proj.{weight,bias}`,
`blocks.N.norm1`, `blocks.N.attn.qkv`, `blocks.N.attn.proj`, `blocks.N.norm2`, `blocks.N.mlp.fc1`,
`blocks.N.mlp.fc2`, `norm`. Three schemes are spoken in the wild; each is recognised by the name of its
patch-embedding weight:

    canonical    patch_embed.proj.weight                      official MAE, timm, this project
    mmpretrain   patch_embed.projection.weight                mmpretrain MAEViT / VisionTransformer, mmseg ViT
    huggingface  embeddings.patch_embeddings.projection.weight  transformers ViTMAEModel, ViTModel, ...

Whatever stands before that name is the encoder's prefix in the file: '' (official, timm, HF ViTMAEModel),
'mae.' (our MAEPretrainer), 'backbone.' (mmpretrain, mmdet, mmseg), 'vit.' (HF ViTMAEForPreTraining,
ViTForImageClassification). Keys outside the prefix belong to decoders, necks and heads and are dropped.

Key names were checked against mmpretrain's `vision_transformer.py` (layers ln1 / attn / ln2 / ffn with mmcv's
FFN `layers.0.0` and `layers.1`; the final norm is `ln1`, `ln2` only normalises the averaged feature map) and
transformers' `modeling_vit_mae.py` (`encoder.layer.N.attention.attention.query|key|value`,
`attention.output.dense`, `intermediate.dense`, `output.dense`, `layernorm_before|after`, `layernorm`).
"""
import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

import torch

SCHEME_MARKERS: Dict[str, str] = {
    'canonical': 'patch_embed.proj.weight',
    'mmpretrain': 'patch_embed.projection.weight',
    'huggingface': 'embeddings.patch_embeddings.projection.weight',
}

# Block parameters of the plain ViT, canonical names after `blocks.N.`.
CANONICAL_BLOCK_KEYS = tuple(f'{module}.{param}' for module in ('norm1', 'attn.qkv', 'attn.proj', 'norm2',
                                                                  'mlp.fc1', 'mlp.fc2')
                             for param in ('weight', 'bias'))
CANONICAL_TOP_KEYS = ('cls_token', 'pos_embed', 'patch_embed.proj.weight', 'patch_embed.proj.bias', 'norm.weight',
                      'norm.bias')
BLOCK_KEY = re.compile(r'^blocks\.(\d+)\.(.+)$')

# Names (after the encoder prefix) that are decoders or heads, never encoder weights.
DECODER_NAMES = ('decoder_', 'mask_token', 'decoder.')
HEAD_NAMES = ('fc_norm.', 'head.', 'head_dist.', 'pre_logits.', 'attn_pool.', 'classifier.', 'pooler.')


class UnknownCheckpointFormatError(ValueError):
    """The file is not a ViT checkpoint in any scheme we know, or it holds weights we cannot place."""


@dataclass
class EncoderKeys:
    """The encoder part of a state dict, renamed to the canonical scheme.

    Attributes:
        state_dict: canonical name -> tensor.
        dropped: original names of the keys left behind (decoder, neck, heads, anything outside the encoder).
        extra: canonical-looking encoder keys beyond the plain ViT (e.g. rel-pos tables of a ViTDet
            backbone); kept, so that whoever loads them sees them.
    """
    state_dict: Dict[str, torch.Tensor] = field(default_factory=dict)
    dropped: List[str] = field(default_factory=list)
    extra: List[str] = field(default_factory=list)


def encoder_prefixes(keys: Iterable[str], scheme: str) -> List[str]:
    """Every prefix under which `scheme`'s patch-embedding weight occurs, shortest first.

    Args:
        keys: state dict keys.
        scheme: one of `SCHEME_MARKERS`.
    """
    marker = SCHEME_MARKERS[scheme]
    found = set()
    for key in keys:
        if key.endswith(marker):
            prefix = key[:-len(marker)]
            if prefix == '' or prefix.endswith('.'):  # a whole dotted name, not '...my_patch_embed.proj'
                found.add(prefix)
    return sorted(found, key=lambda p: (len(p), p))


def detect_scheme(keys: Iterable[str]) -> Optional[Tuple[str, str]]:
    """(scheme, encoder prefix) of a state dict, or None when no scheme's patch embedding is there.

    Args:
        keys: state dict keys.
    """
    keys = list(keys)
    matches = [(scheme, prefixes[0]) for scheme in SCHEME_MARKERS
               for prefixes in [encoder_prefixes(keys, scheme)] if prefixes]
    if len(matches) > 1:
        raise UnknownCheckpointFormatError(
            f'the checkpoint holds encoders in several key schemes ({matches}); convert it with an explicit '
            '--format')
    return matches[0] if matches else None


def dropped_kind(key: str) -> str:
    """'decoder', 'head', 'neck' or 'other' for a dropped key (original name, prefix included).

    Args:
        key: a key left out of the encoder.
    """
    parts = key.split('.')
    if any(part.startswith(('decoder', 'mask_token')) for part in parts) or key.startswith('target_generator.'):
        return 'decoder'
    if any(part.startswith(('head', 'fc_norm', 'classifier', 'pooler', 'pre_logits', 'attn_pool'))
           or part.endswith('_head') for part in parts) or key.endswith(('ln2.weight', 'ln2.bias')):
        return 'head'
    if key.startswith('neck.'):
        return 'neck'  # mmdet / mmseg necks; mmpretrain's MAE decoder sits here too (its keys say decoder)
    return 'other'


def split_canonical(state_dict: Mapping[str, torch.Tensor], prefix: str) -> EncoderKeys:
    """Take the encoder out of a state dict that already uses canonical names under `prefix`.

    Args:
        state_dict: the whole model's state dict (official MAE, timm, this project's wrappers).
        prefix: where the encoder sits ('', 'mae.', 'backbone.', ...).
    """
    result = EncoderKeys()
    for key, value in state_dict.items():
        if not key.startswith(prefix):
            result.dropped.append(key)
            continue
        name = key[len(prefix):]
        if name.startswith(DECODER_NAMES) or name.startswith(HEAD_NAMES):
            result.dropped.append(key)
            continue
        result.state_dict[name] = value
        block = BLOCK_KEY.match(name)
        if name not in CANONICAL_TOP_KEYS and not (block and block.group(2) in CANONICAL_BLOCK_KEYS):
            result.extra.append(name)
    return result


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

    `ln2` (the norm of `out_type='avg_featmap'`, the counterpart of timm's `fc_norm`) is dropped with the
    heads. Layer scale (`gamma1`, `gamma2`) and `pre_norm` have no counterpart in our encoder and are refused.

    Args:
        state_dict: the whole model's state dict.
        prefix: where the backbone sits (usually 'backbone.').
    """
    result = EncoderKeys()
    unplaced = []
    for key, value in state_dict.items():
        if not key.startswith(prefix):
            result.dropped.append(key)
            continue
        name = key[len(prefix):]
        if name in MMPRETRAIN_TOP:
            result.state_dict[MMPRETRAIN_TOP[name]] = value
        elif name.startswith('ln2.'):
            result.dropped.append(key)
        elif (layer := MMPRETRAIN_LAYER_KEY.match(name)) and layer.group(2) in MMPRETRAIN_BLOCK:
            index, module, param = layer.groups()
            result.state_dict[f'blocks.{index}.{MMPRETRAIN_BLOCK[module]}.{param}'] = value
        else:
            unplaced.append(key)
    _refuse_unplaced(unplaced, 'mmpretrain')
    return result


HF_TOP = {
    'embeddings.cls_token': 'cls_token',
    'embeddings.position_embeddings': 'pos_embed',
    'embeddings.patch_embeddings.projection.weight': 'patch_embed.proj.weight',
    'embeddings.patch_embeddings.projection.bias': 'patch_embed.proj.bias',
    'layernorm.weight': 'norm.weight',
    'layernorm.bias': 'norm.bias',
}
HF_BLOCK = {
    'layernorm_before': 'norm1',
    'attention.output.dense': 'attn.proj',
    'layernorm_after': 'norm2',
    'intermediate.dense': 'mlp.fc1',
    'output.dense': 'mlp.fc2',
}
HF_LAYER_KEY = re.compile(r'^encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$')
HF_QKV = re.compile(r'^attention\.attention\.(query|key|value)$')
HF_DROPPED = ('embeddings.mask_token', 'pooler.', 'decoder.', 'classifier.', 'fc_norm.')


def rename_huggingface(state_dict: Mapping[str, torch.Tensor], prefix: str) -> EncoderKeys:
    """transformers `ViTMAEModel` / `ViTModel` (optionally under `vit.`) -> canonical names.

    The separate query, key and value projections are stacked into one `qkv` in that order, which is how
    `Attention` splits its output ([3, heads, head_dim] along the output features).

    Args:
        state_dict: the whole model's state dict.
        prefix: where the ViT sits ('' or 'vit.').
    """
    result = EncoderKeys()
    qkv_parts: Dict[Tuple[str, str], Dict[str, torch.Tensor]] = {}  # (block, weight|bias) -> {q, k, v}
    unplaced = []
    for key, value in state_dict.items():
        if not key.startswith(prefix):
            result.dropped.append(key)
            continue
        name = key[len(prefix):]
        layer = HF_LAYER_KEY.match(name)
        if name in HF_TOP:
            result.state_dict[HF_TOP[name]] = value
        elif name.startswith(HF_DROPPED):
            result.dropped.append(key)
        elif layer and layer.group(2) in HF_BLOCK:
            index, module, param = layer.groups()
            result.state_dict[f'blocks.{index}.{HF_BLOCK[module]}.{param}'] = value
        elif layer and (part := HF_QKV.match(layer.group(2))):
            index, _, param = layer.groups()
            qkv_parts.setdefault((index, param), {})[part.group(1)] = value
        else:
            unplaced.append(key)
    _refuse_unplaced(unplaced, 'HuggingFace')
    for (index, param), parts in sorted(qkv_parts.items()):
        if set(parts) != {'query', 'key', 'value'}:
            raise UnknownCheckpointFormatError(
                f'HuggingFace block {index}: found only {sorted(parts)} of query/key/value {param}')
        # each [D, D] (weight) or [D] (bias) -> [3 * D, D] or [3 * D], q first
        result.state_dict[f'blocks.{index}.attn.qkv.{param}'] = torch.cat(
            [parts['query'], parts['key'], parts['value']], dim=0)
    return result


def _refuse_unplaced(keys: List[str], scheme: str) -> None:
    """Raise when encoder keys of a renamed scheme have no canonical counterpart: dropping them silently
    would give a different network."""
    if keys:
        shown = ', '.join(keys[:8]) + (f' ... ({len(keys)} in all)' if len(keys) > 8 else '')
        raise UnknownCheckpointFormatError(
            f'{scheme} checkpoint: these encoder weights have no counterpart in the mae_transfer ViT (layer '
            f'scale, pre-norm or another block design?): {shown}')


RENAMERS = {'canonical': split_canonical, 'mmpretrain': rename_mmpretrain, 'huggingface': rename_huggingface}

__all__ = ['EncoderKeys', 'SCHEME_MARKERS', 'RENAMERS', 'UnknownCheckpointFormatError', 'detect_scheme',
           'dropped_kind', 'encoder_prefixes', 'rename_huggingface', 'rename_mmpretrain', 'split_canonical']
