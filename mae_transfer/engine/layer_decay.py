"""Layer-wise learning-rate decay for ViT fine-tuning (BEiT, MAE, ViTDet, ViTPose), shared by every task.

Layer ids follow the official MAE `lr_decay.py`: patch embedding, cls token and position embedding are
layer 0, block i is layer i + 1, everything after the encoder (final norm, necks, heads) is layer
num_layers + 1, and a group's lr is `base_lr * decay_rate ** (num_layers + 1 - layer_id)`. The mapping is one
pure function of the parameter name, so it works whatever prefix the encoder sits under (`backbone.` in mmdet
and mmseg, `mae.` in pretraining, `module.` under DDP).
"""
import re
from typing import Dict, List, Optional, Set, Tuple

import torch
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from torch import nn

from ..registry import OPTIM_WRAPPER_CONSTRUCTORS

EMBEDDING_NAMES = ('patch_embed', 'cls_token', 'pos_embed')  # layer 0
# Never decayed (besides every 1-D parameter: norms and biases), as in the official MAE and ViTDet recipes.
NO_DECAY_NAMES = ('pos_embed', 'cls_token', 'mask_token', 'rel_pos_h', 'rel_pos_w')
_BLOCK_INDEX = re.compile(r'(?:^|\.)blocks\.(\d+)\.')  # 'blocks.3.' but not 'decoder_blocks.3.'


def get_layer_id(name: str, num_layers: int) -> int:
    """Layer id of parameter `name` in a ViT with `num_layers` blocks (see the module docstring)."""
    parts = name.split('.')
    if any(part in EMBEDDING_NAMES for part in parts):
        return 0
    match = _BLOCK_INDEX.search(name)
    if match:
        return int(match.group(1)) + 1
    return num_layers + 1


def wants_weight_decay(name: str, param: torch.Tensor) -> bool:
    return param.ndim > 1 and name.split('.')[-1] not in NO_DECAY_NAMES


WEIGHT_DECAY_RULES = ('mae', 'vitdet')


def vitdet_exempt_names(module: nn.Module, prefix: str = '') -> Set[str]:
    """Names of the parameters ViTDet does not decay: those of `nn.LayerNorm` modules (token LayerNorms of the
    backbone; not the channel `LayerNorm2d` of necks and heads, detectron2's separate `LayerNorm` class) and
    every `pos_embed`."""
    from ..models.necks.simple_fpn import LayerNorm2d  # engine may read models; lazily, to keep imports light
    exempt = set()
    for module_name, child in module.named_modules(prefix=prefix.rstrip('.')):
        for param_name, _ in child.named_parameters(prefix=module_name, recurse=False):
            norm = isinstance(child, nn.LayerNorm) and not isinstance(child, LayerNorm2d)
            if norm or param_name.split('.')[-1] == 'pos_embed':
                exempt.add(param_name)
    return exempt


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Parameter groups with layer-wise lr decay and (rule 'mae') no weight decay on norms, biases, tokens, rel-pos.

    Config (mmdet, mmseg or ours)::

        optim_wrapper = dict(
            constructor='mae_transfer.LayerDecayOptimWrapperConstructor',
            optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.1),
            paramwise_cfg=dict(num_layers=12, decay_rate=0.7))

    paramwise_cfg:
        num_layers: blocks of the ViT encoder.
        decay_rate: lr multiplier per layer of distance from the top.
        weight_decay_rule: which parameters get no weight decay.
            'mae' (default; official MAE / BEiT fine-tuning): every 1-D parameter (norms, biases) and the
            `NO_DECAY_NAMES` tokens and tables.
            'vitdet' (detectron2 ViTDet, `get_default_optimizer_params(weight_decay_norm=0.0)` with the
            override `pos_embed: weight_decay 0`): only the parameters of `nn.LayerNorm` modules and
            `pos_embed`; biases, rel-pos tables and the channel LayerNorms (`LayerNorm2d`, detectron2's own
            `LayerNorm`, which is not an `nn.LayerNorm`) of the neck and heads are decayed.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        paramwise_cfg = dict(paramwise_cfg or {})
        unknown = set(paramwise_cfg) - {'num_layers', 'decay_rate', 'weight_decay_rule'}
        if unknown or 'num_layers' not in paramwise_cfg:
            raise ValueError(f'LayerDecayOptimWrapperConstructor needs paramwise_cfg=dict(num_layers=..., '
                             f'decay_rate=...); got unknown keys {sorted(unknown)}' if unknown else
                             'LayerDecayOptimWrapperConstructor needs paramwise_cfg.num_layers (encoder blocks)')
        self.num_layers = int(paramwise_cfg['num_layers'])
        self.decay_rate = float(paramwise_cfg.get('decay_rate', 1.0))
        self.weight_decay_rule = paramwise_cfg.get('weight_decay_rule', 'mae')
        if self.weight_decay_rule not in WEIGHT_DECAY_RULES:
            raise ValueError(f'weight_decay_rule {self.weight_decay_rule!r}: use one of {WEIGHT_DECAY_RULES}')
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '', **kwargs) -> None:
        """Fill `params` with one group per (layer id, decays) pair; frozen parameters are left out."""
        groups: Dict[Tuple[int, bool], dict] = {}
        exempt = vitdet_exempt_names(module, prefix) if self.weight_decay_rule == 'vitdet' else None
        for name, param in module.named_parameters(prefix=prefix.rstrip('.')):
            if not param.requires_grad:
                continue
            layer_id = get_layer_id(name, self.num_layers)
            decays = wants_weight_decay(name, param) if exempt is None else name not in exempt
            if (layer_id, decays) not in groups:
                scale = self.decay_rate ** (self.num_layers + 1 - layer_id)
                groups[(layer_id, decays)] = dict(params=[], param_names=[], layer_id=layer_id, lr_scale=scale,
                                                  lr=self.base_lr * scale,
                                                  weight_decay=self.base_wd if decays else 0.0)
            groups[(layer_id, decays)]['params'].append(param)
            groups[(layer_id, decays)]['param_names'].append(name)
        ordered = [groups[key] for key in sorted(groups)]
        params.extend(ordered)
        print_log(self.describe(ordered), logger='current')

    def describe(self, groups: List[dict]) -> str:
        """A compact table of the groups: layer id, lr scale, weight decay, tensors and parameters."""
        lines = [f'layer-wise lr decay {self.decay_rate} over {self.num_layers} layers, base lr {self.base_lr:g}:',
                 f'{"layer":>5} {"lr scale":>9} {"wd":>6} {"tensors":>7} {"params":>10}']
        for group in groups:
            count = sum(p.numel() for p in group['params'])
            lines.append(f'{group["layer_id"]:>5} {group["lr_scale"]:>9.4g} {group["weight_decay"]:>6g} '
                         f'{len(group["params"]):>7} {count:>10,}')
        return '\n'.join(lines)
