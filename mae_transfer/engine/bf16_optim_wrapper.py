"""bf16 training without autocast: fp32 master weights, bf16 copies made once per step.

`torch.autocast` casts the weights of every linear again at every call of every op, and keeps LayerNorm,
softmax and the like in fp32, which costs casts of activations back and forth. Here the model's parameters
are cast to bf16 once when the step's forward starts, the forward and backward run entirely in bf16, and
once the backward is done the fp32 tensors are put back and the bf16 gradients become fp32 gradients. The
optimizer, gradient clipping, param-group constructors (layer decay, LARS) and checkpoints only ever see the
fp32 parameters: a checkpoint holds fp32 weights and loads in a plain model.

Select it in any config (or `--cfg-options optim_wrapper.type=mae_transfer.Bf16MasterWeightsOptimWrapper`):

    optim_wrapper = dict(type='mae_transfer.Bf16MasterWeightsOptimWrapper', optimizer=dict(type='AdamW', ...))

Limits: the model's forward must take its floating input as a tensor argument (cast to bf16 here) and run in
its parameters' dtype, as the MAE pretrainer and ViT classifiers do. mmdet / mmseg heads mix in fp32 tensors
(anchors, targets) and mmcv's CPU ops take fp32 only: use `AutocastOptimWrapper` there. Not under DDP / FSDP
(their gradient buckets are built for the fp32 parameters): refused.
"""
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import torch
from mmengine.optim import OptimWrapper
from torch import nn

from ..registry import OPTIM_WRAPPERS


class StepWeightCast:
    """Casts a model's floating parameters to a low-precision dtype for one forward + backward, then back.

    `cast()` before the forward; `restore()` after the backward puts the fp32 tensors back and adds the
    low-precision gradients, in fp32, to the fp32 gradients already accumulated (accumulative_counts).
    Frozen parameters (requires_grad False, e.g. fixed position tables) are cast too, so no op mixes dtypes.
    """

    def __init__(self, model: nn.Module, dtype: torch.dtype) -> None:
        self.model = model
        self.dtype = dtype
        self._saved: List[Tuple[nn.Parameter, torch.Tensor, Optional[torch.Tensor]]] = []  # (param, fp32, grad)
        self._input_hook: Optional[torch.utils.hooks.RemovableHandle] = None

    @property
    def active(self) -> bool:
        return bool(self._saved)

    def cast(self) -> None:
        if self.active:  # a forward whose backward never came: drop that graph's weights
            self.restore()
        for param in self.model.parameters():
            if param.is_floating_point() and param.dtype != self.dtype:
                self._saved.append((param, param.data, param.grad))
                param.grad = None  # the backward writes a fresh low-precision gradient
                param.data = param.data.to(self.dtype)
        self._input_hook = self.model.register_forward_pre_hook(self._cast_inputs, with_kwargs=True)

    def restore(self) -> None:
        for param, master, accumulated in self._saved:
            new_grad = param.grad
            param.grad = None  # a gradient must match its parameter's dtype: drop it before the swap
            param.data = master
            if new_grad is not None:
                new_grad = new_grad.to(master.dtype)
                param.grad = new_grad if accumulated is None else accumulated.add_(new_grad)
            else:
                param.grad = accumulated
        self._saved = []
        if self._input_hook is not None:
            self._input_hook.remove()
            self._input_hook = None

    def _cast_inputs(self, module: nn.Module, args: Tuple[Any, ...],
                     kwargs: Dict[str, Any]) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
        def to_low(value: Any) -> Any:
            is_float = isinstance(value, torch.Tensor) and value.is_floating_point()
            return value.to(self.dtype) if is_float else value
        return tuple(map(to_low, args)), {key: to_low(value) for key, value in kwargs.items()}


@OPTIM_WRAPPERS.register_module()
class Bf16MasterWeightsOptimWrapper(OptimWrapper):
    """OptimWrapper that runs each forward and backward on bf16 copies of fp32 master weights (no autocast).

    Args:
        dtype: the compute dtype; 'bfloat16' (default). float16 needs loss scaling: refused.
        **kwargs: OptimWrapper's (optimizer, clip_grad, accumulative_counts).
    """

    def __init__(self, dtype: Union[str, torch.dtype] = 'bfloat16', **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cast_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        if self.cast_dtype != torch.bfloat16:
            raise ValueError(f'{self.cast_dtype} is not supported: bfloat16 only (float16 needs loss scaling: '
                             'use AmpOptimWrapper on a GPU)')
        self._weights: Optional[StepWeightCast] = None

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        if isinstance(model, (nn.parallel.DistributedDataParallel,)) or type(model).__name__.endswith('FSDP'):
            raise NotImplementedError('Bf16MasterWeightsOptimWrapper does not support DDP / FSDP (gradient '
                                      'buckets are built for fp32 parameters); use AutocastOptimWrapper')
        if self._weights is None or self._weights.model is not model:
            self._weights = StepWeightCast(model, self.cast_dtype)
        with super().optim_context(model):
            self._weights.cast()
            try:
                yield
            except BaseException:
                self._weights.restore()  # the forward failed: no backward will restore the fp32 weights
                raise

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        try:
            super().backward(loss, **kwargs)
        finally:
            if self._weights is not None:
                self._weights.restore()  # fp32 weights and gradients before clipping and the optimizer step
