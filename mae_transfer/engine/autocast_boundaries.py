"""bf16 autocast on CPU at the boundaries of code that takes fp32 only: mmcv's compiled ops, and the evaluators.

Under CPU autocast, boxes and features come out of bf16 matmuls and convolutions. mmcv 2.1's CPU kernels of
`nms` and `roi_align` dispatch on float only, and stop the first iteration of Mask R-CNN with `expected scalar
type Float but found BFloat16`. The fix belongs at the ops' boundary: inside a CPU autocast region their
floating-point inputs are cast to fp32 and they run with autocast off, and a floating-point result goes back to
the dtype of the first floating-point input, as the CUDA kernels return half for half (mmdet writes RoI features
into a buffer of the features' dtype). Backward gets fp32 gradients the same way. Everything around them stays
bf16. Outside autocast, and on CUDA, nothing changes.

`AutocastOptimWrapper` applies this when it is built, so every config that trains with `--amp` on a CPU gets it;
`cast_mmcv_ops_to_fp32()` is idempotent.

Predictions made under autocast carry bf16 tensors (boxes, scores), which numpy cannot hold: mmdet's COCO metric
stops on `.numpy()`. `fp32_predictions` casts a test step's floating-point outputs to fp32 before the evaluator
sees them (`tools/test.py --amp`).
"""
import functools
import importlib
from typing import Any, Callable, List

import torch

# (module, autograd Function) of the mmcv ops our configs reach on CPU
FP32_ONLY_OPS = (('mmcv.ops.nms', 'NMSop'), ('mmcv.ops.nms', 'SoftNMSop'), ('mmcv.ops.roi_align', 'RoIAlignFunction'))
_MARK = '_mae_transfer_fp32_on_cpu_autocast'


def _to_fp32(value: Any) -> Any:
    return value.float() if isinstance(value, torch.Tensor) and value.is_floating_point() else value


def _forward_in_fp32(forward: Callable) -> Callable:
    """`forward(ctx, *args)` in fp32 with autocast off when CPU autocast is on; a floating-point result goes back
    to the first floating-point input's dtype, and `ctx` remembers the cast for backward."""
    @functools.wraps(forward)
    def wrapped(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        if not torch.is_autocast_enabled('cpu'):
            return forward(ctx, *args, **kwargs)
        dtypes = [a.dtype for a in args if isinstance(a, torch.Tensor) and a.is_floating_point()]
        ctx.ran_in_fp32 = True
        with torch.autocast('cpu', enabled=False):
            result = forward(ctx, *map(_to_fp32, args), **{k: _to_fp32(v) for k, v in kwargs.items()})
        if dtypes and isinstance(result, torch.Tensor) and result.is_floating_point():
            return result.to(dtypes[0])
        return result
    return wrapped


def _backward_in_fp32(backward: Callable) -> Callable:
    """`backward(ctx, *grads)` on fp32 gradients when forward ran in fp32 (autocast is off by then; autograd casts
    the returned gradients to the inputs' dtypes)."""
    @functools.wraps(backward)
    def wrapped(ctx: Any, *grads: Any) -> Any:
        if getattr(ctx, 'ran_in_fp32', False):
            grads = tuple(map(_to_fp32, grads))
        return backward(ctx, *grads)
    return wrapped


def cast_mmcv_ops_to_fp32() -> List[str]:
    """Make mmcv's fp32-only ops take fp32 inputs under CPU autocast; returns the ops changed now (none when mmcv
    is absent or they were changed before)."""
    changed = []
    for module_name, name in FP32_ONLY_OPS:
        try:
            function = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError):  # mmcv without these ops (lite builds): nothing to guard
            continue
        if getattr(function, _MARK, False):
            continue
        function.forward = staticmethod(_forward_in_fp32(function.forward))
        if 'backward' in vars(function):
            function.backward = staticmethod(_backward_in_fp32(function.backward))
        setattr(function, _MARK, True)
        changed.append(f'{module_name}.{name}')
    return changed


def to_fp32(outputs: Any) -> Any:
    """Half-precision floating-point tensors in `outputs` (tensors, lists, dicts, mmengine data elements, nested)
    cast to fp32, in place for data elements; integer and boolean tensors are left alone."""
    from mmengine.structures import BaseDataElement
    if isinstance(outputs, torch.Tensor):
        return outputs.float() if outputs.dtype in (torch.bfloat16, torch.float16) else outputs
    if isinstance(outputs, BaseDataElement):
        for key, value in list(outputs.items()):
            setattr(outputs, key, to_fp32(value))
        return outputs
    if isinstance(outputs, (list, tuple)):
        return type(outputs)(to_fp32(value) for value in outputs)
    if isinstance(outputs, dict):
        return {key: to_fp32(value) for key, value in outputs.items()}
    return outputs


def fp32_predictions(model: Any) -> None:
    """Make `model.test_step` and `model.val_step` return fp32 predictions (see the module docstring)."""
    for name in ('test_step', 'val_step'):
        step = getattr(model, name)

        @functools.wraps(step)
        def wrapped(*args: Any, _step: Callable = step, **kwargs: Any) -> Any:
            return to_fp32(_step(*args, **kwargs))
        object.__setattr__(model, name, wrapped)


__all__ = ['FP32_ONLY_OPS', 'cast_mmcv_ops_to_fp32', 'fp32_predictions', 'to_fp32']
