"""Checkpoint formats: how each is recognised and how its keys are renamed to the canonical scheme.

Adding a format means editing this file and adding one test, nothing else. Here: a marker in `SCHEME_MARKERS`
and a renamer in `RENAMERS` when it brings a new key scheme, its name in `CHECKPOINT_FORMATS` / `FORMAT_SCHEMES`
and `format_label` (and in `FORMATS_WITHOUT_CLS_ROW` if its pos_embed may lack the cls row), and `sidecar_hints`
when its files keep facts beside the weights (grid, heads). The test: a writer in the `CASES` table of
tests/checkpoint/test_formats.py. The rest of the package (canonical metadata, loading into models, export)
works on canonical names only.

Canonical (official MAE / timm) encoder names: `cls_token`, `pos_embed`, `patch_embed.proj.{weight,bias}`,
`blocks.N.norm1`, `blocks.N.attn.qkv`, `blocks.N.attn.proj`, `blocks.N.norm2`, `blocks.N.mlp.fc1`,
`blocks.N.mlp.fc2`, `norm`; the MAE decoder beside them: `mask_token`, `decoder_embed`, `decoder_pos_embed`,
`decoder_blocks.N.*`, `decoder_norm`, `decoder_pred`. Three schemes are spoken in the wild; each is recognised
by the name of its patch-embedding weight:

    canonical    patch_embed.proj.weight                      official MAE, timm, this project
    mmpretrain   patch_embed.projection.weight                mmpretrain MAEViT / VisionTransformer, mmseg ViT
    huggingface  embeddings.patch_embeddings.projection.weight  transformers ViTMAEModel, ViTModel, ...

Whatever stands before that name is the encoder's prefix in the file: '' (official, timm, HF ViTMAEModel),
'mae.' (our MAEPretrainer), 'backbone.' (mmpretrain, mmdet, mmseg), 'vit.' (HF ViTMAEForPreTraining,
ViTForImageClassification). Keys outside the prefix belong to necks and heads and are dropped; decoders
and heads under the prefix are dropped from the encoder too (a canonical decoder is kept apart, for the MAE
model).

Key names were checked against mmpretrain's `vision_transformer.py` (layers ln1 / attn / ln2 / ffn with mmcv's
FFN `layers.0.0` and `layers.1`; the final norm is `ln1`, `ln2` only normalises the averaged feature map) and
transformers' `modeling_vit_mae.py` (`encoder.layer.N.attention.attention.query|key|value`,
`attention.output.dense`, `intermediate.dense`, `output.dense`, `layernorm_before|after`, `layernorm`).
"""
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

import torch

from ..models.layers.beit_attention import grid_of_table
from ..utils.user_errors import UserError

# format name -> key scheme it is renamed from (formats of one scheme differ only in how they are wrapped)
CHECKPOINT_FORMATS = ('official_mae', 'mae_transfer', 'timm', 'mmpretrain', 'huggingface')
CHECKPOINT_FORMATS += ('vitpose',)  # ViTPose's released pose models (mmpose 0.x): `rename_vitpose`
FORMAT_SCHEMES = {'vitpose': 'vitpose',
                  'official_mae': 'canonical', 'mae_transfer': 'canonical', 'timm': 'canonical',
                  'mmpretrain': 'mmpretrain', 'huggingface': 'huggingface'}

# formats whose pos_embed may lack the cls row (timm `no_embed_class=True`); every other one always stores it
FORMATS_WITHOUT_CLS_ROW = ('timm',)

SCHEME_MARKERS: Dict[str, str] = {
    'canonical': 'patch_embed.proj.weight',
    'mmpretrain': 'patch_embed.projection.weight',
    'huggingface': 'embeddings.patch_embeddings.projection.weight',
}
# Schemes that share another's marker (scheme -> the scheme whose marker finds it) and, per marker's scheme, a
# refiner (keys, prefix) -> scheme that tells them apart; the formats below register theirs.
REFINED_SCHEMES: Dict[str, str] = {}
SCHEME_REFINERS: Dict[str, Any] = {}

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

# what transformers' save_pretrained writes into a model directory
HF_WEIGHT_FILES = ('model.safetensors', 'pytorch_model.bin')


class UnknownCheckpointFormatError(ValueError, UserError):
    """The file is not a ViT checkpoint in any scheme we know, or it holds weights we cannot place."""


@dataclass
class EncoderKeys:
    """The encoder part of a state dict, renamed to the canonical scheme.

    Attributes:
        state_dict: canonical name -> tensor.
        decoder: a canonical-scheme MAE decoder under the same prefix (official `_full` / `_visualize` files,
            our pretraining), canonical name -> tensor; its original keys are in `dropped` too.
        dropped: original names of the keys left out of the encoder (decoder, neck, heads, anything outside).
        extra: canonical-looking encoder keys beyond the plain ViT (e.g. rel-pos tables of a ViTDet
            backbone); kept, so that whoever loads them sees them.
    """
    state_dict: Dict[str, torch.Tensor] = field(default_factory=dict)
    decoder: Dict[str, torch.Tensor] = field(default_factory=dict)
    dropped: List[str] = field(default_factory=list)
    extra: List[str] = field(default_factory=list)
    grid_size: Optional[Tuple[int, int]] = None  # patch grid of pos_embed when the format fixes it (ViTPose)


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
    matches = [(SCHEME_REFINERS[scheme](keys, prefixes[0]) if scheme in SCHEME_REFINERS else scheme, prefixes[0])
               for scheme in SCHEME_MARKERS if scheme not in REFINED_SCHEMES
               for prefixes in [encoder_prefixes(keys, scheme)] if prefixes]
    if len(matches) > 1:
        raise UnknownCheckpointFormatError(
            f'the checkpoint holds encoders in several key schemes ({matches}); convert it with an explicit '
            '--format')
    return matches[0] if matches else None


def format_label(scheme: str, container: str, prefix: str, checkpoint: Mapping[str, Any], ours: bool) -> str:
    """Name the source of a file from its scheme and wrapping (the conversion does not depend on it).

    Args:
        scheme: the detected key scheme.
        container: where the state dict sat ('model', 'state_dict', 'module' or '').
        prefix: the encoder prefix.
        checkpoint: the loaded file.
        ours: the file was written by `save_encoder_checkpoint`.
    """
    if scheme != 'canonical':
        return scheme
    if ours:
        return 'mae_transfer'
    if isinstance(checkpoint.get('meta'), Mapping) and checkpoint['meta'].get('source_format') == 'detectron2':
        return 'detectron2'  # read by safe_load.load_detectron2_checkpoint
    if container == 'model':
        return 'official_mae'
    if container == 'state_dict' and (prefix or isinstance(checkpoint.get('meta'), Mapping)):
        return 'mae_transfer'  # mmengine checkpoint of one of our models
    return 'timm'


def sidecar_hints(weights_path: Path) -> Dict[str, Any]:
    """Facts the weights cannot tell, from a file beside them: `num_heads` and `grid_size` from the
    `config.json` of a HuggingFace model directory (ViT / ViTMAE), read only beside HF's own weight file
    names (a config.json next to other files may describe another model).

    Args:
        weights_path: the weight file being read.
    """
    config_path = weights_path.parent / 'config.json'
    if weights_path.name not in HF_WEIGHT_FILES or not config_path.is_file():
        return {}
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError):
        return {}
    hints: Dict[str, Any] = {}
    if isinstance(config.get('num_attention_heads'), int):
        hints['num_heads'] = config['num_attention_heads']
    image, patch = config.get('image_size'), config.get('patch_size')
    if image and patch:
        image_h, image_w = (image, image) if isinstance(image, int) else image
        patch_h, patch_w = (patch, patch) if isinstance(patch, int) else patch
        hints['grid_size'] = (int(image_h) // int(patch_h), int(image_w) // int(patch_w))
    return hints


# ----------------------------------------------------------------------------------------------------------
# Renamers: (whole state dict, encoder prefix) -> EncoderKeys
# ----------------------------------------------------------------------------------------------------------

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
    for key, name, value in under_prefix(state_dict, prefix, result.dropped):
        layer = HF_LAYER_KEY.match(name)
        if name in HF_TOP:
            result.state_dict[HF_TOP[name]] = value
        elif leading_kind(name) or name == 'embeddings.mask_token':  # decoder, pooler, classifier, fc_norm
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


# mmseg 1.2.2 `BEiT` and `MAE` backbones (mmseg/models/backbones/beit.py, mae.py; the MAE paper's ADE20K
# setting): mmpretrain's layer names (ln1 / attn / ln2 / ffn, `patch_embed.projection`, final norm `ln1`) plus
# layer scale `gamma_1` / `gamma_2` and a relative position bias table per block; BEiT learns `q_bias` / `v_bias`
# beside a bias-free qkv and has no `pos_embed`. Same patch-embedding marker as mmpretrain: told apart by keys
# only it has (mmpretrain's own BEiT, with `gamma_1.weight`, reads the same way).
CHECKPOINT_FORMATS += ('mmseg_beit',)
FORMAT_SCHEMES['mmseg_beit'] = 'mmseg_beit'
SCHEME_MARKERS['mmseg_beit'] = SCHEME_MARKERS['mmpretrain']
MMSEG_BEIT_ONLY_KEY = re.compile(r'^layers\.\d+\.(attn\.q_bias|gamma_1(\.weight)?|attn\.relative_position_bias_table)$')
MMSEG_BEIT_BLOCK = {f'{module}.{param}': f'{MMPRETRAIN_BLOCK[module]}.{param}' for module in MMPRETRAIN_BLOCK
                    for param in ('weight', 'bias')}
MMSEG_BEIT_BLOCK.update({'gamma_1': 'ls1.gamma', 'gamma_2': 'ls2.gamma', 'gamma_1.weight': 'ls1.gamma',
                         'gamma_2.weight': 'ls2.gamma',
                         'attn.relative_position_bias_table': 'attn.relative_position_bias_table'})
MMSEG_BEIT_LAYER_KEY = re.compile(r'^layers\.(\d+)\.(.+)$')


def refine_mmpretrain_scheme(keys: Iterable[str], prefix: str) -> str:
    """'mmseg_beit' when keys under `prefix` include BEiT-only names (q_bias, gamma_1, a rel-pos bias table),
    else 'mmpretrain'."""
    return 'mmseg_beit' if any(key.startswith(prefix) and MMSEG_BEIT_ONLY_KEY.match(key[len(prefix):])
                               for key in keys) else 'mmpretrain'


REFINED_SCHEMES['mmseg_beit'] = 'mmpretrain'  # found through mmpretrain's marker, told apart by its keys
SCHEME_REFINERS['mmpretrain'] = refine_mmpretrain_scheme


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
    _refuse_unplaced(unplaced, 'mmseg BEiT/MAE')
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


def _refuse_unplaced(keys: List[str], scheme: str) -> None:
    """Raise when encoder keys of a renamed scheme have no canonical counterpart: dropping them silently
    would give a different network."""
    if keys:
        shown = ', '.join(keys[:8]) + (f' ... ({len(keys)} in all)' if len(keys) > 8 else '')
        raise UnknownCheckpointFormatError(
            f'{scheme} checkpoint: these encoder weights have no counterpart in the mae_transfer ViT (layer '
            f'scale, pre-norm or another block design?): {shown}')


# ----------------------------------------------------------------------------------------------------------
# ViTPose (ViTAE-Transformer/ViTPose, mmpose 0.x): `mmpose/models/backbones/vit.py` + TopdownHeatmapSimpleHead
# ----------------------------------------------------------------------------------------------------------
# A released ViTPose file is {'state_dict': {...}, 'meta': ...} with `backbone.patch_embed.proj`, `backbone.pos_embed`
# [1, 1 + 16 * 12, D] (cls row first, learned, non-square), `backbone.blocks.N.*` in the canonical block names,
# `backbone.last_norm` (the final LayerNorm), no cls token (ViTPose drops it but adds its position to every patch),
# and the classic head `keypoint_head.deconv_layers.{0,1,3,4}.*` / `keypoint_head.final_layer.*`, which are our
# `HeatmapHead`'s names. Checked against the repository at commit 33f49cf1f24077ec175cef0990bd25d2746c4898.

VITPOSE_HEAD_PREFIX = 'keypoint_head.'
VITPOSE_BACKBONE_PREFIX = 'backbone.'


def is_vitpose(keys: Iterable[str], prefix: str) -> bool:
    """A canonical-scheme state dict is a ViTPose one: its encoder has ViTPose's `last_norm`, or the file holds
    ViTPose's `keypoint_head`.

    Args:
        keys: state dict keys.
        prefix: the encoder prefix found for the canonical scheme.
    """
    keys = list(keys)
    return (f'{prefix}last_norm.weight' in keys
            or (prefix == VITPOSE_BACKBONE_PREFIX and any(k.startswith(VITPOSE_HEAD_PREFIX) for k in keys)))


def vitpose_grid(num_positions: int) -> Optional[Tuple[int, int]]:
    """The patch grid of a ViTPose pos_embed with `num_positions` patch rows: ViTPose's inputs are 4:3
    (height:width; 256x192 -> 16x12, 384x288 -> 24x18), so (4k, 3k) with 12 k^2 positions; None otherwise."""
    side = int(round((num_positions / 12) ** 0.5))
    return (4 * side, 3 * side) if side > 0 and 12 * side * side == num_positions else None


def rename_vitpose(state_dict: Mapping[str, torch.Tensor], prefix: str) -> EncoderKeys:
    """ViTPose backbone -> canonical names: `last_norm` -> `norm`, a zero `cls_token` (ViTPose has none; our
    pose configs keep the token out of the sequence and only add its pos_embed row), the pos_embed grid from
    ViTPose's 4:3 inputs. The head and anything outside the backbone are dropped.

    Args:
        state_dict: the whole model's state dict.
        prefix: where the backbone sits ('backbone.').
    """
    renamed = {}
    for key, value in state_dict.items():
        if key.startswith(prefix + 'last_norm.'):
            key = prefix + 'norm.' + key[len(prefix + 'last_norm.'):]
        renamed[key] = value
    result = split_canonical(renamed, prefix)
    pos_embed = result.state_dict.get('pos_embed')
    if pos_embed is not None and 'cls_token' not in result.state_dict:
        result.state_dict['cls_token'] = pos_embed.new_zeros(1, 1, pos_embed.shape[-1])
    if pos_embed is not None:
        result.grid_size = vitpose_grid(pos_embed.shape[-2] - 1)
    return result


def rename_vitpose_model(state_dict: Dict[str, Any], prefix: str = '') -> bool:
    """Rename, in place, a whole ViTPose model state dict (backbone + classic or simple head) to our
    `TopdownPoseEstimator`'s keys: `keypoint_head.*` -> `head.*` (same module names), `backbone.last_norm.*` ->
    `backbone.norm.*`, and a zero `backbone.cls_token` (unused: the pose backbone keeps no cls token). An mmpose
    1.x ViTPose state dict (`head.*` already ours) gets its backbone renamed by `rename_mmpose_vitpose`. Used by
    the estimator's load-state-dict hook, so that `tools/test.py POSE_CONFIG vitpose.pth` loads the file as
    released.

    Args:
        state_dict: the state dict being loaded (mutated).
        prefix: the estimator's prefix in it ('' for a whole-model load).

    Returns:
        whether it was a ViTPose state dict (nothing is changed otherwise).
    """
    backbone = prefix + VITPOSE_BACKBONE_PREFIX
    if is_mmpose_vitpose(list(state_dict), backbone) and prefix + 'head.final_layer.weight' in state_dict:
        _rename_mmpose_backbone_in_place(state_dict, backbone)  # head.* already has our names
        return True
    if not is_vitpose(list(state_dict), backbone) or prefix + 'head.final_layer.weight' in state_dict:
        return False
    for key in [k for k in state_dict if k.startswith((prefix + VITPOSE_HEAD_PREFIX, backbone + 'last_norm.'))]:
        value = state_dict.pop(key)
        if key.startswith(prefix + VITPOSE_HEAD_PREFIX):
            state_dict[prefix + 'head.' + key[len(prefix + VITPOSE_HEAD_PREFIX):]] = value
        else:
            state_dict[backbone + 'norm.' + key[len(backbone + 'last_norm.'):]] = value
    pos_embed = state_dict.get(backbone + 'pos_embed')
    if pos_embed is not None and backbone + 'cls_token' not in state_dict:
        state_dict[backbone + 'cls_token'] = pos_embed.new_zeros(1, 1, pos_embed.shape[-1])
    return True


def refine_canonical_scheme(keys: Iterable[str], prefix: str) -> str:
    """'vitpose' for ViTPose's backbone (canonical block names plus `last_norm` / `keypoint_head`), else
    'canonical'."""
    return 'vitpose' if is_vitpose(keys, prefix) else 'canonical'


SCHEME_MARKERS['vitpose'] = SCHEME_MARKERS['canonical']
REFINED_SCHEMES['vitpose'] = 'canonical'
SCHEME_REFINERS['canonical'] = refine_canonical_scheme


# mmpose 1.x ViTPose (configs/body_2d_keypoint/topdown_heatmap/coco/td-hm_ViTPose-*_8xb64-210e_coco-256x192.py):
# mmpretrain's `VisionTransformer(with_cls_token=False, out_type='featmap', final_norm=True,
# patch_cfg=dict(padding=2))`, so mmpretrain's names (`patch_embed.projection`, `layers.N.*`, final norm `ln1`),
# no `cls_token` and a `pos_embed` without cls row ([1, 16 * 12, D]; mmpretrain drops an MAE table's cls row at
# load and adds nothing to the patches: a zero cls row in our layout), and mmpose's `HeatmapHead` under `head.`
# (`deconv_layers.{0,1,3,4}`, `final_layer`: our names already).
CHECKPOINT_FORMATS += ('mmpose_vitpose',)
FORMAT_SCHEMES['mmpose_vitpose'] = 'mmpose_vitpose'
SCHEME_MARKERS['mmpose_vitpose'] = SCHEME_MARKERS['mmpretrain']
REFINED_SCHEMES['mmpose_vitpose'] = 'mmpretrain'


def is_mmpose_vitpose(keys: Iterable[str], prefix: str) -> bool:
    """An mmpretrain-scheme encoder without cls token (`with_cls_token=False`: mmpose 1.x's ViTPose)."""
    keys = list(keys)
    return (f'{prefix}{SCHEME_MARKERS["mmpretrain"]}' in keys and f'{prefix}pos_embed' in keys
            and f'{prefix}cls_token' not in keys)


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


def _rename_mmpose_backbone_in_place(state_dict: Dict[str, Any], backbone: str) -> None:
    """Replace the mmpose 1.x backbone keys under `backbone` by canonical ones (`rename_mmpose_vitpose`)."""
    keys = [k for k in state_dict if k.startswith(backbone)]
    converted = rename_mmpose_vitpose({k: state_dict[k] for k in keys}, backbone)
    for key in keys:
        del state_dict[key]
    state_dict.update({backbone + name: value for name, value in converted.state_dict.items()})


_refine_mmpretrain_without_pose = SCHEME_REFINERS.get('mmpretrain', lambda keys, prefix: 'mmpretrain')


def refine_mmpretrain_for_pose(keys: Iterable[str], prefix: str) -> str:
    """The mmpretrain refinement, plus 'mmpose_vitpose' for an mmpretrain ViT without cls token."""
    keys = list(keys)
    scheme = _refine_mmpretrain_without_pose(keys, prefix)
    return 'mmpose_vitpose' if scheme == 'mmpretrain' and is_mmpose_vitpose(keys, prefix) else scheme


SCHEME_REFINERS['mmpretrain'] = refine_mmpretrain_for_pose


RENAMERS = {'canonical': split_canonical, 'mmpretrain': rename_mmpretrain, 'huggingface': rename_huggingface}
RENAMERS['mmseg_beit'] = rename_mmseg_beit
RENAMERS['vitpose'] = rename_vitpose
RENAMERS['mmpose_vitpose'] = rename_mmpose_vitpose

__all__ = ['CHECKPOINT_FORMATS', 'DECODER_NAMES', 'EncoderKeys', 'FORMATS_WITHOUT_CLS_ROW', 'FORMAT_SCHEMES',
           'HEAD_NAMES', 'RENAMERS',
           'SCHEME_MARKERS', 'UnknownCheckpointFormatError', 'detect_scheme', 'dropped_kind', 'encoder_prefixes',
           'format_label', 'leading_kind', 'rename_huggingface', 'rename_mmpretrain', 'rename_mmseg_beit',
           'sidecar_hints',
           'split_canonical', 'unwrap_checkpoint']
__all__ += ['is_mmpose_vitpose', 'is_vitpose', 'rename_mmpose_vitpose', 'rename_vitpose', 'rename_vitpose_model',
            'vitpose_grid']


# ----------------------------------------------------------------------------------------------------------
# detectron2 ViTDet (facebookresearch/detectron2 projects/ViTDet, model zoo `model_final_*.pkl`)
# ----------------------------------------------------------------------------------------------------------
# A released file is a plain pickle {'model': {name: numpy array}, '__author__': ..., 'matching_heuristics': ...}
# (read by `safe_load.load_detectron2_checkpoint`). The backbone `backbone.net.*` (detectron2's
# `modeling/backbone/vit.py` ViT) uses the canonical names (`patch_embed.proj`, `pos_embed` with the cls row,
# `blocks.N.{norm1,attn.qkv,attn.proj,attn.rel_pos_h,attn.rel_pos_w,norm2,mlp.fc1,mlp.fc2}`), with no cls token
# and no final norm. The pyramid `backbone.simfp_{2,3,4,5}` (SimpleFeaturePyramid, scale factors 4, 2, 1, 0.5)
# is an nn.Sequential per level: stem layers (x4: ConvTranspose, LayerNorm, GELU, ConvTranspose; x2: ConvTranspose;
# x1: none; x0.5: MaxPool), then detectron2 `Conv2d`s with a `norm` (1x1, then 3x3; no bias). Checked against
# detectron2 at commit 02b5c4e295e990042a714712c21dc79b731e8833.

DETECTRON2_FORMAT = 'detectron2'
CHECKPOINT_FORMATS += (DETECTRON2_FORMAT,)
FORMAT_SCHEMES[DETECTRON2_FORMAT] = 'canonical'  # read from the mmdet layout `detectron2_to_mmdet` gives
DETECTRON2_BACKBONE_PREFIX = 'backbone.net.'
DETECTRON2_PYRAMID_KEY = re.compile(r'^backbone\.simfp_(\d+)\.(\d+)\.(.+)$')
# stage (stride 2 ** stage from a stride-16 map) -> (scale factor, number of stem layers before the 1x1 conv)
DETECTRON2_PYRAMID_STAGES = {2: (4.0, 4), 3: (2.0, 1), 4: (1.0, 0), 5: (0.5, 1)}


def is_detectron2(keys: Iterable[str]) -> bool:
    """A state dict of a detectron2 ViTDet model (its ViT sits under `backbone.net.`)."""
    return any(key.startswith(DETECTRON2_BACKBONE_PREFIX + 'patch_embed.') for key in keys)


def rename_detectron2_pyramid(key: str, scale_factors: Tuple[float, ...] = (4.0, 2.0, 1.0, 0.5)) -> Optional[str]:
    """Our `SimpleFPN` name of detectron2's `backbone.simfp_*` key (None for a key that is not the pyramid's).

    Args:
        key: a detectron2 key.
        scale_factors: our SimpleFPN's scale factors (the level index is the position of the stage's scale).
    """
    match = DETECTRON2_PYRAMID_KEY.match(key)
    if match is None:
        return None
    stage, layer, rest = int(match.group(1)), int(match.group(2)), match.group(3)
    if stage not in DETECTRON2_PYRAMID_STAGES or DETECTRON2_PYRAMID_STAGES[stage][0] not in scale_factors:
        raise UnknownCheckpointFormatError(f'detectron2 checkpoint: {key} is a pyramid level (stride '
                                           f'{2 ** stage}) that SimpleFPN{tuple(scale_factors)} does not have')
    scale, stem_layers = DETECTRON2_PYRAMID_STAGES[stage]
    level = list(scale_factors).index(scale)
    if layer < stem_layers:  # the x4 stem is a Sequential of 4 layers; the x2 stem a single ConvTranspose2d
        return f'stems.{level}.{layer}.{rest}' if stem_layers > 1 else f'stems.{level}.{rest}'
    conv = {stem_layers: 'lateral_convs', stem_layers + 1: 'output_convs'}.get(layer)
    if conv is None:
        raise UnknownCheckpointFormatError(f'detectron2 checkpoint: {key} has no SimpleFPN counterpart')
    # detectron2's Conv2d(norm=...) keeps `weight` (and `bias`) itself and the norm as `.norm`; ours is
    # Sequential(conv, LayerNorm2d)
    return f'{conv}.{level}.1.{rest[len("norm."):]}' if rest.startswith('norm.') else f'{conv}.{level}.0.{rest}'


def detectron2_to_mmdet(model: Mapping[str, Any]) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """detectron2 ViTDet weights -> (mmdet-layout state dict for MAEViT + SimpleFPN, detectron2 keys left out).

    The ViT goes to `backbone.<canonical name>`, with a zero `cls_token` added (detectron2's ViT has none; the
    ViTDet configs keep the token out of the sequence, so it is never used); the pyramid goes to `neck.*`.
    detectron2's RPN and RoI heads are not mmdet's modules: they keep their names (`proposal_generator.*`,
    `roi_heads.*`, which no mmdet module has), so that loaders report them as unused, and are also returned.

    Args:
        model: the `'model'` dict of the file, numpy arrays or tensors.
    """
    state_dict: Dict[str, torch.Tensor] = {}
    left_out = []
    for key, value in model.items():
        tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
        if key.startswith(DETECTRON2_BACKBONE_PREFIX):
            state_dict['backbone.' + key[len(DETECTRON2_BACKBONE_PREFIX):]] = tensor
        elif (name := rename_detectron2_pyramid(key)) is not None:
            state_dict['neck.' + name] = tensor
        else:
            left_out.append(key)
            state_dict[key] = tensor
    patch = state_dict.get('backbone.patch_embed.proj.weight')  # [D, C, p, p]
    if patch is None:
        raise UnknownCheckpointFormatError('detectron2 checkpoint without backbone.net.patch_embed.proj.weight: '
                                           'not a ViTDet model')
    state_dict.setdefault('backbone.cls_token', torch.zeros(1, 1, patch.shape[0], dtype=patch.dtype))
    return state_dict, left_out


__all__ += ['DETECTRON2_FORMAT', 'detectron2_to_mmdet', 'is_detectron2', 'rename_detectron2_pyramid']


# ----------------------------------------------------------------------------------------------------------
# Classifier heads: fine-tuned official MAE (`models_vit.py`), timm `VisionTransformer`, our `ViTClassifier`
# ----------------------------------------------------------------------------------------------------------

# Canonical head names (official models_vit.py and timm): `fc_norm` (the LayerNorm of global pooling) and
# `head` (the linear layer); a linear probe's `head.0` (BatchNorm1d buffers) and `head.1` (linear) as official
# main_linprobe.py and our ViTClassifier save them.
CLASSIFIER_HEAD_NAMES = ('fc_norm.', 'head.')


def split_classifier_head(checkpoint: Mapping[str, Any]) -> Dict[str, Tuple[str, torch.Tensor]]:
    """The classifier head of a canonical-scheme checkpoint: canonical name -> (key in the file, tensor).

    The head sits beside the encoder: at the encoder's own prefix in official and timm files (`fc_norm.*`,
    `head.*` next to `blocks.*`), and beside the `backbone.` prefix in our ViTClassifier checkpoints
    (`backbone.blocks.*`, `head.*`). Detector and segmentor heads (`rpn_head.*`, `decode_head.*`) are no
    classifier heads. Other key schemes name their heads otherwise and give {} (their encoders still load).

    Args:
        checkpoint: a loaded checkpoint or a bare state dict.
    """
    state_dict, _ = unwrap_checkpoint(checkpoint)
    tensors = {key: value for key, value in state_dict.items() if isinstance(value, torch.Tensor)}
    found = detect_scheme(tensors)
    if found is None or found[0] != 'canonical':
        return {}
    prefix = found[1]
    outer = prefix[:-len('backbone.')] if prefix.endswith('backbone.') else prefix
    return {key[len(outer):]: (key, value) for key, value in tensors.items()
            if key.startswith(outer) and key[len(outer):].startswith(CLASSIFIER_HEAD_NAMES)}


__all__ += ['CLASSIFIER_HEAD_NAMES', 'split_classifier_head']
