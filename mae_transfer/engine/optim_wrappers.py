"""Mixed precision that also works on CPU.

mmengine's AmpOptimWrapper asserts a GPU and always scales the loss (needed for fp16, not for bf16). This
wrapper only adds `torch.autocast` on the model's device, which is all bf16 needs, on CPU or GPU. For fp16
on a GPU, use mmengine's AmpOptimWrapper (tools/train.py --amp picks the right one).
"""
from contextlib import contextmanager
from typing import Iterator, Union

import torch
from mmengine.optim import OptimWrapper
from torch import nn

from ..registry import OPTIM_WRAPPERS
from .autocast_boundaries import cast_mmcv_ops_to_fp32


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """OptimWrapper whose forward passes run under `torch.autocast(device, dtype)`.

    Args:
        dtype: autocast dtype; 'bfloat16' (default) needs no loss scaling.
    """

    def __init__(self, dtype: Union[str, torch.dtype] = 'bfloat16', **kwargs):
        super().__init__(**kwargs)
        self.cast_dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        if self.cast_dtype == torch.float16:
            raise ValueError('float16 needs loss scaling: use AmpOptimWrapper (GPU) or bfloat16')
        cast_mmcv_ops_to_fp32()  # mmcv's CPU nms / roi_align take fp32 only (engine.autocast_boundaries)

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        device_type = next(model.parameters()).device.type
        with super().optim_context(model), torch.autocast(device_type=device_type, dtype=self.cast_dtype):
            yield
