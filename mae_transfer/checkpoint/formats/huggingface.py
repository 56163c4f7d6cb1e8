"""transformers `ViTMAEModel` / `ViTModel` (at ''), `ViTMAEForPreTraining` / `ViTForImageClassification`
(under `vit.`), from a model directory's `model.safetensors` / `pytorch_model.bin` and its `config.json`.

Key names checked against transformers' `modeling_vit_mae.py`: `encoder.layer.N.attention.attention.query|key|
value`, `attention.output.dense`, `intermediate.dense`, `output.dense`, `layernorm_before|after`, `layernorm`.
The classifier `classifier.*` is our `head.*`; the pooler has no counterpart; the MAE decoder (`decoder.*`) is
left to the decoder list.
"""
import json
import re
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple

import torch

from . import CheckpointFormat, register_format
from .common import (HUGGINGFACE_MARKER, EncoderKeys, UnknownCheckpointFormatError, leading_kind, refuse_unplaced,
                     under_prefix)

# what transformers' save_pretrained writes into a model directory
HF_WEIGHT_FILES = ('model.safetensors', 'pytorch_model.bin')

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
    refuse_unplaced(unplaced, 'HuggingFace')
    for (index, param), parts in sorted(qkv_parts.items()):
        if set(parts) != {'query', 'key', 'value'}:
            raise UnknownCheckpointFormatError(
                f'HuggingFace block {index}: found only {sorted(parts)} of query/key/value {param}')
        # each [D, D] (weight) or [D] (bias) -> [3 * D, D] or [3 * D], q first
        result.state_dict[f'blocks.{index}.attn.qkv.{param}'] = torch.cat(
            [parts['query'], parts['key'], parts['value']], dim=0)
    return result


def huggingface_whole_model(parts: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """`classifier.*` (ViTForImageClassification) -> our classifier's `head.*`; the pooler (`pooler.dense`,
    ViTModel) has no counterpart and is left out."""
    return {('head.' + key[len('classifier.'):] if key.startswith('classifier.') else key): value
            for key, value in parts.items() if not key.startswith('pooler.')}


def sidecar_hints(weights_path: Path) -> Dict[str, Any]:
    """Facts the weights cannot tell, from a file beside them: `num_heads` and `grid_size` from the
    `config.json` of a HuggingFace model directory (ViT / ViTMAE), read only beside HF's own weight file
    names (a config.json next to other files may describe another model).

    Args:
        weights_path: the weight file being read.
    """
    weights_path = Path(weights_path)
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


register_format(CheckpointFormat(name='huggingface', marker=HUGGINGFACE_MARKER, rename=rename_huggingface,
                                 whole_model=huggingface_whole_model))
