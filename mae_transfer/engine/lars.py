"""LARS for the linear probe: timm's `Lars`, registered into our OPTIMIZERS, and `LARS`, the same optimiser
with the official MAE rule (`util/lars.py`): 1-D parameters (biases, norms) get neither weight decay nor the
trust-ratio adaptation, matrices always get the trust ratio (even with weight decay 0, the probe's setting).

mmengine registers torch's optimisers only, so a config names them with our scope:
`optimizer=dict(type='LARS', lr=0.1 * 16384 / 256, weight_decay=0.0, momentum=0.9)`.
"""
from typing import Any, Dict, Iterable, List, Union

import torch
from timm.optim import Lars

from ..registry import OPTIMIZERS

OPTIMIZERS.register_module(name='Lars', module=Lars)


@OPTIMIZERS.register_module()
class LARS(Lars):
    """timm `Lars` (momentum 0.9, trust coefficient 0.001 by default) with the official MAE exclusion of 1-D
    parameters: each parameter group is split into its matrices (trust ratio always, the group's weight
    decay) and its vectors (plain SGD with momentum, no weight decay).

    Args:
        params: parameters or parameter groups (what mmengine's optimiser constructors pass).
        lr: learning rate.
        momentum: SGD momentum.
        weight_decay: L2 penalty of the matrices.
        trust_coeff: LARS trust coefficient.
        **kwargs: other options of timm's `Lars` (dampening, nesterov, eps, trust_clip).
    """

    def __init__(self, params: Union[Iterable[torch.Tensor], Iterable[Dict[str, Any]]], lr: float,
                 momentum: float = 0.9, weight_decay: float = 0.0, trust_coeff: float = 0.001, **kwargs: Any):
        groups = list(params)
        if groups and not isinstance(groups[0], dict):
            groups = [dict(params=groups)]
        split: List[Dict[str, Any]] = []
        for group in groups:
            tensors = list(group['params'])
            matrices = [p for p in tensors if p.ndim > 1]
            vectors = [p for p in tensors if p.ndim <= 1]
            if matrices:
                split.append({**group, 'params': matrices, 'always_adapt': True})
            if vectors:
                split.append({**group, 'params': vectors, 'always_adapt': False, 'weight_decay': 0.0})
        super().__init__(split, lr=lr, momentum=momentum, weight_decay=weight_decay, trust_coeff=trust_coeff,
                         **kwargs)


__all__ = ['LARS', 'Lars']
