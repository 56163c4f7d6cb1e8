"""Load pretrained encoder weights into a backbone: official MAE files, our own checkpoints, saved backbones.

The key scheme is the official MAE / timm one everywhere, so loading is mostly selection:

1. take the state dict from `model` (official MAE), `state_dict` (mmengine, ours) or the file itself;
2. keep what lies under a known wrapper prefix and strip it, repeatedly: `module.` (DDP), `mae.` (our
   `MAEPretrainer`), `backbone.` (a detector / segmentor saved by mmdet / mmseg); `prefix=` picks one
   explicitly instead;
3. drop what a backbone never has: the MAE decoder (`decoder_*`, `mask_token`) and classification heads
   (`head.*`, `fc_norm.*`);
4. fit shapes: `pos_embed` is resized (bicubic, cls entry kept aside) to the backbone's pretraining grid,
   rel-pos tables of another size are linearly interpolated.

Files in other formats (timm / mmpretrain / HuggingFace key schemes, `.safetensors`, model directories) are
handed to `mae_transfer.checkpoint.load_pretrained_encoder`, the general converter, when it is installed;
the official and our own formats never depend on it.

Keys the backbone has by design but MAE never had (the rel-pos tables) are reported once as expected (INFO);
anything else missing or unexpected is a WARNING that lists the keys.
"""
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import nn

from ..engine.safe_load import safe_torch_load
from .layers.pos_embed import resize_pos_embed

WRAPPER_PREFIXES = ('module.', 'mae.', 'backbone.')
DECODER_KEY_PREFIXES = ('decoder_', 'mask_token')
DROPPED_KEY_PREFIXES = {
    'MAE decoder': DECODER_KEY_PREFIXES,
    'classification head': ('head.', 'fc_norm.'),
}
NEW_BY_DESIGN_SUFFIXES = ('rel_pos_h', 'rel_pos_w')  # ViTDet additions, zero-initialised


@dataclass
class PretrainedLoadReport:
    """What `load_pretrained_backbone` did.

    Attributes:
        loaded_keys: model keys filled from the checkpoint.
        expected_missing_keys: model keys that are new by design (rel-pos tables); they keep their init.
        missing_keys: other model keys absent from the checkpoint (a problem).
        unexpected_keys: checkpoint keys the model has no place for (a problem).
        dropped_keys: checkpoint keys set aside on purpose, by reason.
        resized_keys: keys whose tensors were resized to the model's shapes.
    """
    loaded_keys: List[str] = field(default_factory=list)
    expected_missing_keys: List[str] = field(default_factory=list)
    missing_keys: List[str] = field(default_factory=list)
    unexpected_keys: List[str] = field(default_factory=list)
    dropped_keys: Dict[str, List[str]] = field(default_factory=dict)
    resized_keys: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing_keys and not self.unexpected_keys


def raw_state_dict(checkpoint: Mapping[str, Any]) -> Dict[str, torch.Tensor]:
    """The state dict of an official (`{'model': ...}`), mmengine (`{'state_dict': ...}`) or bare checkpoint."""
    for key in ('model', 'state_dict'):
        if isinstance(checkpoint.get(key), Mapping):
            return dict(checkpoint[key])
    return dict(checkpoint)


def _keep_prefix(state_dict: Dict[str, torch.Tensor], prefix: str,
                 dropped: Dict[str, List[str]]) -> Dict[str, torch.Tensor]:
    """Keys under `prefix`, stripped; the others are recorded as dropped."""
    outside = [k for k in state_dict if not k.startswith(prefix)]
    if outside:
        dropped.setdefault(f'not under {prefix!r}', []).extend(outside)
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


def strip_wrapper_prefixes(state_dict: Dict[str, torch.Tensor],
                           dropped: Dict[str, List[str]]) -> Dict[str, torch.Tensor]:
    """Strip the known wrapper prefixes, repeatedly ('module.backbone.blocks.0...' -> 'blocks.0...').

    Keys outside a wrapper that others sit under are recorded in `dropped`.
    """
    stripped = True
    while stripped:
        stripped = False
        for wrapper in WRAPPER_PREFIXES:
            if any(k.startswith(wrapper) for k in state_dict):
                state_dict = _keep_prefix(state_dict, wrapper, dropped)
                stripped = True
    return state_dict


def encoder_state_dict(checkpoint: Mapping[str, Any],
                       prefix: Optional[str] = None) -> Tuple[Dict[str, torch.Tensor], Dict[str, List[str]]]:
    """The encoder's tensors of a checkpoint under their canonical names (steps 1-3 of the module docstring).

    Args:
        checkpoint: a loaded checkpoint or state dict.
        prefix: keep only keys under this prefix (stripped); known wrapper prefixes are stripped when None.

    Returns:
        (state dict, dropped keys by reason).
    """
    state_dict = raw_state_dict(checkpoint)
    dropped: Dict[str, List[str]] = {}
    if prefix:
        state_dict = _keep_prefix(state_dict, prefix, dropped)
    else:
        state_dict = strip_wrapper_prefixes(state_dict, dropped)
    for reason, prefixes in DROPPED_KEY_PREFIXES.items():
        keys = [k for k in state_dict if k.startswith(prefixes)]
        if keys:
            dropped.setdefault(reason, []).extend(keys)
            for key in keys:
                del state_dict[key]
    return state_dict, dropped


def _resize_rel_pos(table: torch.Tensor, length: int) -> torch.Tensor:
    """Linear interpolation of a rel-pos table [M, d] to [length, d] (as ViTDet's get_rel_pos)."""
    resized = F.interpolate(table.float().t().unsqueeze(0), size=length, mode='linear')  # [1, d, length]
    return resized.squeeze(0).t().to(table.dtype)  # [length, d]


def fit_to_model(state_dict: Dict[str, torch.Tensor], model: nn.Module, source: str,
                 old_grid: Optional[Tuple[int, int]] = None) -> List[str]:
    """Resize `pos_embed` and rel-pos tables in place to the model's shapes; raise on other mismatches.

    Args:
        state_dict: canonical encoder weights.
        model: the backbone.
        source: the checkpoint's name, for messages.
        old_grid: patch grid of the checkpoint's `pos_embed`; assumed square when left out.

    Returns:
        the resized keys.
    """
    own = model.state_dict()
    resized = []
    if 'pos_embed' in state_dict and 'pos_embed' in own and state_dict['pos_embed'].shape != own['pos_embed'].shape:
        pos_embed = state_dict['pos_embed']  # pos_embed: [1, T, D]
        num_tokens = pos_embed.shape[1]
        if math.isqrt(num_tokens) ** 2 == num_tokens:  # no cls entry (e.g. a timm no-cls model): add a zero one
            pos_embed = torch.cat([pos_embed.new_zeros(1, 1, pos_embed.shape[2]), pos_embed], dim=1)
        try:
            state_dict['pos_embed'] = resize_pos_embed(pos_embed, model.grid_size, old_grid=old_grid,
                                                       num_prefix_tokens=1)
        except ValueError as error:
            raise ValueError(f'{source}: cannot resize pos_embed {tuple(pos_embed.shape)} to the grid '
                             f'{model.grid_size} ({error}); set img_size to the pretraining size') from error
        resized.append('pos_embed')
    for key, value in state_dict.items():
        if (key.endswith(NEW_BY_DESIGN_SUFFIXES) and key in own and value.shape != own[key].shape
                and value.shape[1:] == own[key].shape[1:]):
            state_dict[key] = _resize_rel_pos(value, own[key].shape[0])
            resized.append(key)
    mismatched = [f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
                  for k, v in state_dict.items() if k in own and v.shape != own[k].shape]
    if mismatched:
        raise ValueError(f'{source} does not fit this backbone (another arch or patch size?):\n  '
                         + '\n  '.join(mismatched))
    return resized


def _short(keys: List[str], limit: int = 8) -> str:
    return ', '.join(keys[:limit]) + (f', ... ({len(keys)} in all)' if len(keys) > limit else '')


def _log_report(report: PretrainedLoadReport, source: str, model_name: str) -> None:
    print_log(f'{model_name}: loaded {len(report.loaded_keys)} tensors from {source}'
              + (f'; resized {report.resized_keys}' if report.resized_keys else ''), logger='current')
    for reason, keys in report.dropped_keys.items():
        print_log(f'{model_name}: set aside {len(keys)} checkpoint keys ({reason}): {_short(keys)}',
                  logger='current')
    if report.expected_missing_keys:
        print_log(f'{model_name}: {len(report.expected_missing_keys)} keys are new by design and keep their '
                  f'initialisation (rel-pos tables, zero): {_short(report.expected_missing_keys)}', logger='current')
    if report.missing_keys:
        print_log(f'{model_name}: MISSING from {source}, left as initialised: {report.missing_keys}',
                  logger='current', level=logging.WARNING)
    if report.unexpected_keys:
        print_log(f'{model_name}: UNEXPECTED keys in {source}, ignored: {report.unexpected_keys}',
                  logger='current', level=logging.WARNING)


def _converter() -> Optional[Callable[..., Tuple[Dict[str, torch.Tensor], Any]]]:
    """`mae_transfer.checkpoint.load_pretrained_encoder` when that module is there, else None."""
    try:
        from ..checkpoint import load_pretrained_encoder
    except ImportError:
        return None
    return load_pretrained_encoder


def read_encoder_weights(path: str, prefix: Optional[str] = None
                         ) -> Tuple[Dict[str, torch.Tensor], Dict[str, List[str]], Optional[Tuple[int, int]]]:
    """(canonical encoder weights, dropped keys by reason, pos_embed grid or None) of a checkpoint file.

    Official MAE files and ours are read here; other formats go to the general converter (module docstring).
    """
    if not (path.endswith('.safetensors') or os.path.isdir(path)):
        state_dict, dropped = encoder_state_dict(safe_torch_load(path, map_location='cpu'), prefix=prefix)
        if any(key.startswith('blocks.') for key in state_dict):
            return state_dict, dropped, None
    convert = _converter()
    if convert is None:
        raise ValueError(f'{path}: no ViT blocks under the official MAE key names (blocks.N.*) after removing '
                         f'the prefixes {WRAPPER_PREFIXES}; pass prefix= or convert it with '
                         'tools/convert_checkpoint.py')
    state_dict, meta = convert(path)
    return dict(state_dict), {f'left out by the {meta.source_format} converter': list(meta.dropped_keys)}, \
        tuple(meta.grid_size)


def load_pretrained_backbone(model: nn.Module, checkpoint: Union[str, os.PathLike, Mapping[str, Any]],
                             prefix: Optional[str] = None) -> PretrainedLoadReport:
    """Load encoder weights into `model` (a `MAEViT` or any `ViTEncoder`) and log what happened.

    Args:
        model: the backbone.
        checkpoint: a path (read with `safe_torch_load`: weights only) or an already loaded checkpoint.
        prefix: take only the keys under this prefix (mmengine's `Pretrained` option); None strips the known
            wrapper prefixes.

    Returns:
        a `PretrainedLoadReport`.
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        source = os.fspath(checkpoint)
        state_dict, dropped, old_grid = read_encoder_weights(source, prefix=prefix)
    else:
        source = 'the given checkpoint'
        (state_dict, dropped), old_grid = encoder_state_dict(checkpoint, prefix=prefix), None
    report = PretrainedLoadReport(dropped_keys=dropped)
    report.resized_keys = fit_to_model(state_dict, model, source, old_grid=old_grid)
    incompatible = model.load_state_dict(state_dict, strict=False)
    for key in incompatible.missing_keys:
        (report.expected_missing_keys if key.endswith(NEW_BY_DESIGN_SUFFIXES) else report.missing_keys).append(key)
    report.unexpected_keys = list(incompatible.unexpected_keys)
    report.loaded_keys = [k for k in state_dict if k not in incompatible.unexpected_keys]
    _log_report(report, source, type(model).__name__)
    return report


__all__ = [
    'DECODER_KEY_PREFIXES', 'PretrainedLoadReport', 'encoder_state_dict', 'fit_to_model', 'load_pretrained_backbone',
    'raw_state_dict', 'read_encoder_weights', 'strip_wrapper_prefixes'
]
