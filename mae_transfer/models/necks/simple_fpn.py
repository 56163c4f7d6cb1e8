"""ViTDet's simple feature pyramid (Li et al. 2022) and the channel LayerNorm it uses.

A plain ViT has one stride-16 map. `SimpleFPN` builds strides 4, 8, 16, 32 from that last map alone with
deconvolutions and pooling (no lateral connections, no top-down path), then one more level by stride-2
subsampling of the coarsest output, giving the five maps (strides 4 ... 64) that mmdet's RPN anchor generator
(`strides=[4, 8, 16, 32, 64]`) and RoI extractors (`featmap_strides=[4, 8, 16, 32]`, the first four) expect.
"""
from typing import List, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from ...registry import MODELS


@MODELS.register_module()
class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map (each pixel normalised on its own).

    Args:
        num_channels: C.
        eps: added to the variance (ViTDet: 1e-6).
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__(num_channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] -> [N, C, H, W]."""
        x = x.permute(0, 2, 3, 1)  # x: [N, H, W, C], channels last for layer_norm
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2).contiguous()  # [N, C, H, W]; mmcv RoIAlign reads a dense NCHW buffer


def _rescale(in_channels: int, scale: float, eps: float) -> Tuple[nn.Module, int]:
    """The resampling stem of one pyramid level and its output channels."""
    if scale == 4.0:  # two 2x deconvolutions, halving channels each time
        stem = nn.Sequential(
            nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2),
            LayerNorm2d(in_channels // 2, eps=eps), nn.GELU(),
            nn.ConvTranspose2d(in_channels // 2, in_channels // 4, kernel_size=2, stride=2))
        return stem, in_channels // 4
    if scale == 2.0:
        return nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2), in_channels // 2
    if scale == 1.0:
        return nn.Identity(), in_channels
    if scale == 0.5:
        return nn.MaxPool2d(kernel_size=2, stride=2), in_channels
    raise ValueError(f'unsupported scale factor {scale}; use 4.0, 2.0, 1.0 or 0.5')


class _ConvNorm(nn.Sequential):
    """Conv (no bias: the norm follows) + LayerNorm2d.

    The conv keeps PyTorch's default initialisation, as detectron2's `SimpleFeaturePyramid` does (its
    classic `FPN` applies `c2_xavier_fill`; ViTDet's simple pyramid does not).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, eps: float) -> None:
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        super().__init__(conv, LayerNorm2d(out_channels, eps=eps))


@MODELS.register_module()
class SimpleFPN(BaseModule):
    """ViTDet simple feature pyramid from the last backbone map.

    Each level: a resampling stem (x4: deconv, LayerNorm2d, GELU, deconv; x2: deconv; x1: identity; x0.5:
    2x2 max-pool), then 1x1 conv + LayerNorm2d and 3x3 conv + LayerNorm2d to `out_channels`. Extra levels
    (num_outs beyond the scale factors) subsample the previous output with a stride-2 max-pool of kernel 1.

    Args:
        in_channels: channels of the backbone map (an int, or a list whose last entry is used).
        out_channels: channels of every output.
        scale_factors: resampling of each level relative to the input map, finest first.
        num_outs: number of outputs (ViTDet / mmdet Mask R-CNN: 5).
        norm_eps: eps of the channel LayerNorms (ViTDet: 1e-6; mmdet's ViTDet project: mmcv's 1e-5).
        init_cfg: mmengine init config.
    """

    def __init__(self, in_channels: Union[int, Sequence[int]], out_channels: int = 256,
                 scale_factors: Sequence[float] = (4.0, 2.0, 1.0, 0.5), num_outs: int = 5, norm_eps: float = 1e-6,
                 init_cfg: Union[dict, List[dict], None] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        in_channels = in_channels if isinstance(in_channels, int) else list(in_channels)[-1]
        if num_outs < len(scale_factors):
            raise ValueError(f'num_outs {num_outs} is smaller than the {len(scale_factors)} scale factors')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.scale_factors = tuple(float(s) for s in scale_factors)
        self.num_outs = num_outs
        self.stems = nn.ModuleList()
        self.lateral_convs = nn.ModuleList()
        self.output_convs = nn.ModuleList()
        for scale in self.scale_factors:
            stem, channels = _rescale(in_channels, scale, norm_eps)
            self.stems.append(stem)
            self.lateral_convs.append(_ConvNorm(channels, out_channels, kernel_size=1, eps=norm_eps))
            self.output_convs.append(_ConvNorm(out_channels, out_channels, kernel_size=3, eps=norm_eps))

    def forward(self, inputs: Union[torch.Tensor, Sequence[torch.Tensor]]) -> Tuple[torch.Tensor, ...]:
        """Build the pyramid.

        Args:
            inputs: the backbone's maps (only the last is used), or one map [N, C, h, w].

        Returns:
            `num_outs` maps [N, out_channels, h * s, w * s] for each scale s, then the extra levels, each half
            the size of the one before (rounded up).
        """
        x = inputs if isinstance(inputs, torch.Tensor) else inputs[-1]  # x: [N, C, h, w]
        outs = [out_conv(lateral(stem(x)))  # [N, out_channels, h * s, w * s]
                for stem, lateral, out_conv in zip(self.stems, self.lateral_convs, self.output_convs)]
        while len(outs) < self.num_outs:
            outs.append(F.max_pool2d(outs[-1], kernel_size=1, stride=2))  # [N, out, ceil(h'/2), ceil(w'/2)]
        return tuple(outs)


__all__ = ['LayerNorm2d', 'SimpleFPN']
