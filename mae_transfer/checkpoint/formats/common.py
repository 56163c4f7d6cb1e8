"""What several formats share: the canonical names, the result of a renaming, and the walks every renamer does.

Canonical (official MAE / timm) encoder names: `cls_token`, `pos_embed`, `patch_embed.proj.{weight,bias}`,
`blocks.N.norm1`, `blocks.N.attn.qkv`, `blocks.N.attn.proj`, `blocks.N.norm2`, `blocks.N.mlp.fc1`,
`blocks.N.mlp.fc2`, `norm`; the MAE decoder beside them: `mask_token`, `decoder_embed`, `decoder_pos_embed`,
`decoder_blocks.N.*`, `decoder_norm`, `decoder_pred`.
"""
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

import torch

from ...utils.user_errors import UserError

# the patch-embedding weights that name the three key schemes spoken in the wild (and locate the encoder)
CANONICAL_MARKER = 'patch_embed.proj.weight'  # official MAE, timm, this project, ViTPose, ViTDet
MMPRETRAIN_MARKER = 'patch_embed.projection.weight'  # mmpretrain, mmseg, mmpose 1.x
HUGGINGFACE_MARKER = 'embeddings.patch_embeddings.projection.weight'  # transformers

# Block parameters of the plain ViT, canonical names after `blocks.N.`.
CANONICAL_BLOCK_KEYS = tuple(f'{module}.{param}' for module in ('norm1', 'attn.qkv', 'attn.proj', 'norm2',
                                                                  'mlp.fc1', 'mlp.fc2')
                             for param in ('weight', 'bias'))
CANONICAL_TOP_KEYS = ('cls_token', 'pos_embed', 'patch_embed.proj.weight', 'patch_embed.proj.bias', 'norm.weight',
                      'norm.bias')
BLOCK_KEY = re.compile(r'^blocks\.(\d+)\.(.+)$')

# The one list of what is not the encoder: a dotted part of a key that starts with one of these names is an MAE
# decoder (official / ours `decoder_*` + `mask_token`, HF `decoder.`, mmpretrain `neck.decoder_*`) or a head
# (classifier, pooler, fine-tuning `fc_norm`; detector / segmentor heads end in `_head`).
DECODER_NAMES = ('decoder', 'mask_token')
HEAD_NAMES = ('head', 'fc_norm', 'classifier', 'pooler', 'pre_logits', 'attn_pool')


class UnknownCheckpointFormatError(ValueError, UserError):
    """The file is not a ViT checkpoint in any scheme we know, or it holds weights we cannot place."""


@dataclass
class EncoderKeys:
    """The encoder part of a state dict, renamed to the canonical scheme (what a format's `rename` returns).

    Attributes:
        state_dict: canonical name -> tensor.
        decoder: a canonical-scheme MAE decoder under the same prefix (official `_full` / `_visualize` files,
            our pretraining), canonical name -> tensor; its original keys are in `dropped` too.
        dropped: original names of the keys left out of the encoder (decoder, neck, heads, anything outside).
        extra: canonical-looking encoder keys beyond the plain ViT (e.g. rel-pos tables of a ViTDet
            backbone); kept, so that whoever loads them sees them.
        grid_size: patch grid of pos_embed when the format fixes it (ViTPose's 4:3 inputs).
    """
    state_dict: Dict[str, torch.Tensor] = field(default_factory=dict)
    decoder: Dict[str, torch.Tensor] = field(default_factory=dict)
    dropped: List[str] = field(default_factory=list)
    extra: List[str] = field(default_factory=list)
    grid_size: Optional[Tuple[int, int]] = None


def unwrap_checkpoint(checkpoint: Mapping[str, Any]) -> Tuple[Mapping[str, Any], str]:
    """(state dict, container key): official files keep weights under 'model', mmengine and timm training
    checkpoints under 'state_dict', some older ones under 'module'; a bare state dict has container ''.

    The state dict is returned as it is (not copied), so that its `_metadata` stays readable.

    Args:
        checkpoint: what `torch.load` returned.
    """
    for container in ('model', 'state_dict', 'module'):
        inner = checkpoint.get(container)
        if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
            return inner, container
    return checkpoint, ''


def leading_kind(name: str) -> Optional[str]:
    """'decoder' or 'head' when the first dotted part of `name` (a key after the encoder prefix) names one.

    Args:
        name: a key without the encoder prefix.
    """
    first = name.split('.', 1)[0]
    if first.startswith(DECODER_NAMES):
        return 'decoder'
    if first.startswith(HEAD_NAMES):
        return 'head'
    return None


def dropped_kind(key: str) -> str:
    """'decoder', 'head', 'neck' or 'other' for a dropped key (original name, prefix included).

    Args:
        key: a key left out of the encoder.
    """
    parts = key.split('.')
    if any(part.startswith(DECODER_NAMES) for part in parts) or key.startswith('target_generator.'):
        return 'decoder'
    if any(part.startswith(HEAD_NAMES) or part.endswith('_head') for part in parts) \
            or key.endswith(('ln2.weight', 'ln2.bias')):
        return 'head'
    if key.startswith('neck.'):
        return 'neck'  # mmdet / mmseg necks; mmpretrain's MAE decoder sits here too (its keys say decoder)
    return 'other'


def encoder_prefixes(keys: Iterable[str], marker: str) -> List[str]:
    """Every prefix under which the patch-embedding weight `marker` occurs, shortest first.

    Args:
        keys: state dict keys.
        marker: a format's `marker` (`CANONICAL_MARKER`, ...).
    """
    found = set()
    for key in keys:
        if key.endswith(marker):
            prefix = key[:-len(marker)]
            if prefix == '' or prefix.endswith('.'):  # a whole dotted name, not '...my_patch_embed.proj'
                found.add(prefix)
    return sorted(found, key=lambda p: (len(p), p))


def under_prefix(state_dict: Mapping[str, Any], prefix: str,
                 dropped: List[str]) -> Iterator[Tuple[str, str, Any]]:
    """(key, name without `prefix`, value) of each key under `prefix`, in file order; the keys outside it are
    appended to `dropped` (they belong to necks, heads or other models). Every renamer walks a file this way.

    Args:
        state_dict: the whole model's state dict.
        prefix: where the encoder sits.
        dropped: the renamer's list of left-out keys.
    """
    for key, value in state_dict.items():
        if key.startswith(prefix):
            yield key, key[len(prefix):], value
        else:
            dropped.append(key)


def split_canonical(state_dict: Mapping[str, torch.Tensor], prefix: str) -> EncoderKeys:
    """Take the encoder (and a canonical MAE decoder) out of a state dict that already uses canonical names.

    Args:
        state_dict: the whole model's state dict (official MAE, timm, this project's wrappers).
        prefix: where the encoder sits ('', 'mae.', 'backbone.', ...).
    """
    result = EncoderKeys()
    for key, name, value in under_prefix(state_dict, prefix, result.dropped):
        kind = leading_kind(name)
        if kind is not None:
            result.dropped.append(key)
            if kind == 'decoder':
                result.decoder[name] = value
            continue
        result.state_dict[name] = value
        block = BLOCK_KEY.match(name)
        if name not in CANONICAL_TOP_KEYS and not (block and block.group(2) in CANONICAL_BLOCK_KEYS):
            result.extra.append(name)
    return result


def with_zero_cls_token(result: EncoderKeys) -> EncoderKeys:
    """Add a zero `cls_token` to an encoder that has none (ViTPose, ViTDet): their models keep the token out of
    the sequence, so it is never used, but our ViT has one."""
    proj = result.state_dict.get('patch_embed.proj.weight')  # [D, C, p, p]
    if proj is not None and 'cls_token' not in result.state_dict:
        result.state_dict['cls_token'] = proj.new_zeros(1, 1, proj.shape[0])
    return result


def refuse_unplaced(keys: List[str], scheme: str) -> None:
    """Raise when encoder keys of a renamed scheme have no canonical counterpart: dropping them silently
    would give a different network.

    Args:
        keys: the original names that found no place.
        scheme: the format, for the message.
    """
    if keys:
        shown = ', '.join(keys[:8]) + (f' ... ({len(keys)} in all)' if len(keys) > 8 else '')
        raise UnknownCheckpointFormatError(
            f'{scheme} checkpoint: these encoder weights have no counterpart in the mae_transfer ViT (layer '
            f'scale, pre-norm or another block design?): {shown}')


def vitpose_grid(num_positions: int) -> Optional[Tuple[int, int]]:
    """The patch grid of a ViTPose pos_embed with `num_positions` patch rows: ViTPose's inputs are 4:3
    (height:width; 256x192 -> 16x12, 384x288 -> 24x18), so (4k, 3k) with 12 k^2 positions; None otherwise."""
    side = int(round((num_positions / 12) ** 0.5))
    return (4 * side, 3 * side) if side > 0 and 12 * side * side == num_positions else None


def rename_prefixes(parts: Mapping[str, torch.Tensor], renames: Mapping[str, str]) -> Dict[str, torch.Tensor]:
    """`parts` with each key that starts with a key of `renames` starting with its value instead (a
    `whole_model` made of prefix renamings); other keys keep their names.

    Args:
        parts: name -> tensor.
        renames: old prefix -> new prefix (the first that fits is taken).
    """
    out = {}
    for key, value in parts.items():
        old = next((old for old in renames if key.startswith(old)), None)
        out[key if old is None else renames[old] + key[len(old):]] = value
    return out
