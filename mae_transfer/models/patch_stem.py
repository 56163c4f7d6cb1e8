"""PatchStem: the smallest real backbone, used to check registry wiring before MAEViT exists.

A stride-4 patchifying convolution followed by stride-2 stages, returning a tuple of NCHW maps as mmdet
and mmseg necks expect. It carries no pretrained weights and is not meant for accuracy; the
`configs/smoke/` configs and the registry tests use it to prove that an mmdet or mmseg config reaches a
`mae_transfer.*` class under its own default scope.
"""
from typing import Sequence, Tuple

import torch
from mmengine.model import BaseModule
from torch import nn

from ..registry import MODELS


@MODELS.register_module()
class PatchStem(BaseModule):
    """Patchify (stride 4) then halve the resolution per stage.

    Args:
        in_channels: channels of the input image.
        channels: output channels of each stage; stage i has stride 4 * 2**i.
        out_indices: which stages to return.
    """

    def __init__(self, in_channels: int = 3, channels: Sequence[int] = (32, 32, 32, 32),
                 out_indices: Sequence[int] = (0, 1, 2, 3), init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        stages = [nn.Sequential(nn.Conv2d(in_channels, channels[0], kernel_size=4, stride=4), nn.GELU())]
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            stages.append(nn.Sequential(nn.Conv2d(c_in, c_out, kernel_size=3, stride=2, padding=1), nn.GELU()))
        self.stages = nn.ModuleList(stages)
        self.out_indices = tuple(out_indices)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        outs = []
        for index, stage in enumerate(self.stages):
            x = stage(x)  # x: [N, C_i, H / (4 * 2**i), W / (4 * 2**i)]
            if index in self.out_indices:
                outs.append(x)
        return tuple(outs)
