"""Turn a trained `ViTClassifier` checkpoint into a timm `VisionTransformer` state dict, to publish or reuse it.

    state_dict, kwargs = classifier_to_timm(torch.load('work_dirs/cls/epoch_100.pth')['state_dict'])
    model = timm.models.vision_transformer.VisionTransformer(**kwargs)
    model.load_state_dict(state_dict)          # strict: same logits as the ViTClassifier

The encoder keys are already timm's (`backbone.` is stripped). The head depends on the model's pooling:

- global average pooling (fine-tuning): `fc_norm` and `head` as they are, no final `norm`
  (timm: `global_pool='avg', fc_norm=True`);
- cls token (linear probe, or fine-tuning with pool='cls'): the final `norm` and the head; a linear probe's
  `BatchNorm1d(affine=False)` + linear layer is folded into one linear layer with the BatchNorm's running
  statistics, W' = W / sqrt(var + eps), b' = b - W' mean (timm: `global_pool='token'`).
"""
import json
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple

import torch

from .canonical import CheckpointMeta, canonicalize
from .files import PathLike, atomic_write, save_weights
from .formats import unwrap_checkpoint

BN_EPS = 1e-6  # the linear probe's BatchNorm1d eps


def _strip(state_dict: Mapping[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    return {key[len(prefix):]: value for key, value in state_dict.items() if key.startswith(prefix)}


def classifier_to_timm(checkpoint: Mapping[str, Any], bn_eps: float = BN_EPS
                       ) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """(timm state dict, timm `VisionTransformer` constructor arguments) of a ViTClassifier checkpoint.

    Args:
        checkpoint: an mmengine checkpoint of a `ViTClassifier` ({'state_dict': ...}) or its state dict; a
            DDP `module.` prefix is stripped.
        bn_eps: eps of the linear probe's BatchNorm, used when folding it into the head.

    Raises:
        ValueError: the checkpoint holds no classifier head (`head.weight` or `head.1.weight`).
    """
    raw, _ = unwrap_checkpoint(checkpoint)
    wrapper = 'module.' if any(key.startswith('module.') for key in raw) else ''
    state_dict = {k: v for k, v in _strip(raw, wrapper).items() if isinstance(v, torch.Tensor)}
    if 'head.weight' in state_dict:
        head_weight, head_bias = state_dict['head.weight'], state_dict['head.bias']
    elif 'head.1.weight' in state_dict:
        mean, var = state_dict['head.0.running_mean'].float(), state_dict['head.0.running_var'].float()
        scale = (var + bn_eps).rsqrt()  # [D]
        weight = state_dict['head.1.weight'].float() * scale[None, :]  # [C, D]
        head_bias = (state_dict['head.1.bias'].float() - weight @ mean).to(state_dict['head.1.bias'].dtype)
        head_weight = weight.to(state_dict['head.1.weight'].dtype)
    else:
        raise ValueError('not a ViTClassifier checkpoint: no head.weight (fine-tuned) or head.1.weight (linear '
                         'probe); for encoder-only files use tools/convert_checkpoint.py without --to-timm')
    avg_pool = 'fc_norm.weight' in state_dict
    # the canonical encoder (names, pos_embed with its cls row, the grid the backbone recorded) through the
    # general converter
    canonical = canonicalize(checkpoint, prefix=wrapper + 'backbone.')
    encoder, meta = canonical.encoder, canonical.meta
    timm_state = {k: v for k, v in encoder.items() if not (avg_pool and k.startswith('norm.'))}
    if meta.extra_keys:
        raise ValueError(f'the encoder holds weights a timm VisionTransformer has no place for (rel-pos tables?): '
                         f'{meta.extra_keys[:6]}')
    if avg_pool:
        timm_state['fc_norm.weight'] = state_dict['fc_norm.weight']
        timm_state['fc_norm.bias'] = state_dict['fc_norm.bias']
    timm_state['head.weight'] = head_weight
    timm_state['head.bias'] = head_bias
    return timm_state, timm_kwargs(meta, num_classes=head_weight.shape[0], avg_pool=avg_pool)


def timm_kwargs(meta: CheckpointMeta, num_classes: int, avg_pool: bool) -> Dict[str, Any]:
    """Constructor arguments of the timm `VisionTransformer` that the converted state dict fits.

    Args:
        meta: what the encoder converter read off the weights.
        num_classes: rows of the head.
        avg_pool: global average pooling + fc_norm (True) or the cls token after the final norm (False).
    """
    if meta.num_heads is None:
        raise ValueError(f'cannot tell the number of heads of a {meta.embed_dim}-d x {meta.depth} ViT from its '
                         'weights; pass it to timm yourself')
    patch = meta.patch_size if isinstance(meta.patch_size, int) else list(meta.patch_size)
    kwargs = dict(img_size=list(meta.img_size) if meta.img_size[0] != meta.img_size[1] else meta.img_size[0],
                  patch_size=patch, in_chans=meta.in_chans, num_classes=num_classes, embed_dim=meta.embed_dim,
                  depth=meta.depth, num_heads=meta.num_heads, mlp_ratio=meta.mlp_ratio, qkv_bias=meta.qkv_bias,
                  class_token=True, global_pool='avg' if avg_pool else 'token', fc_norm=avg_pool)
    return kwargs


def save_timm_classifier(state_dict: Mapping[str, torch.Tensor], kwargs: Mapping[str, Any], path: PathLike) -> Path:
    """Write a timm state dict (bare in `.pth` / `.pt`, plain `.safetensors`) and its constructor arguments
    beside it as `<path>.json`, both atomically.

    Args:
        state_dict: from `classifier_to_timm`.
        kwargs: the timm `VisionTransformer` arguments from `classifier_to_timm`.
        path: destination ending in `.pth`, `.pt` or `.safetensors`.
    """
    path = save_weights(state_dict, path, safetensors_metadata={'format': 'pt'})
    atomic_write(json.dumps(dict(kwargs), indent=2) + '\n', f'{path}.json')
    return path


__all__ = ['classifier_to_timm', 'save_timm_classifier', 'timm_kwargs']
