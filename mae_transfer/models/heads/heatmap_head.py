"""Heatmap heads on the ViT's stride-16 map (ViTPose) and the target-weighted MSE loss.

- `HeatmapHead` (classic, SimpleBaseline): deconvolutions (256 ch, kernel 4, stride 2) + BN + ReLU, each doubling
  the resolution, then a 1x1 conv to one map per keypoint: stride 16 -> 4 with two deconvs.
- `SimpleHeatmapHead` (ViTPose "simple"): ReLU, x4 bilinear upsampling, then a 3x3 conv to the keypoint maps.

Both map features [N, C, h, w] to heatmaps [N, K, 4h, 4w]. Heads and the loss are registered in MODELS; the pose
estimator builds them from its config with `mae_transfer.utils.builder.build_module`, so a head registered elsewhere
works the same way.
"""
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import MODELS


@MODELS.register_module()
class KeypointMSELoss(nn.Module):
    """Mean squared error over heatmaps, each keypoint's map weighted by its target weight.

    Args:
        use_target_weight: multiply each map's error by its weight (0 for unlabelled keypoints).
        loss_weight: factor on the loss.
    """

    def __init__(self, use_target_weight: bool = True, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.use_target_weight = use_target_weight
        self.loss_weight = loss_weight

    def forward(self, output: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """output, target: [N, K, H, W]; weights: [N, K]."""
        loss = F.mse_loss(output, target, reduction='none')  # [N, K, H, W]
        if self.use_target_weight:
            loss = loss * weights[:, :, None, None]
        return loss.mean() * self.loss_weight


def _init_head(module: nn.Module) -> None:
    """SimpleBaseline's initialisation: small normal weights, zero biases, unit BN."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, std=0.001)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


@MODELS.register_module()
class HeatmapHead(nn.Module):
    """Classic deconvolution head.

    Args:
        in_channels: channels of the backbone map.
        out_channels: number of keypoints.
        deconv_out_channels: channels of each deconvolution (each doubles the resolution).
        deconv_kernel_sizes: kernel of each deconvolution (4, 3 or 2).
        final_kernel_size: kernel of the last conv (1 in the classic head).
    """

    def __init__(self, in_channels: int, out_channels: int = 17, deconv_out_channels: Sequence[int] = (256, 256),
                 deconv_kernel_sizes: Sequence[int] = (4, 4), final_kernel_size: int = 1) -> None:
        super().__init__()
        if len(deconv_out_channels) != len(deconv_kernel_sizes):
            raise ValueError('deconv_out_channels and deconv_kernel_sizes must have the same length')
        layers = []
        channels = in_channels
        for out, kernel in zip(deconv_out_channels, deconv_kernel_sizes):
            padding, output_padding = {4: (1, 0), 3: (1, 1), 2: (0, 0)}[kernel]  # exact x2 upsampling
            layers += [nn.ConvTranspose2d(channels, out, kernel, stride=2, padding=padding,
                                          output_padding=output_padding, bias=False),
                       nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            channels = out
        self.deconv_layers = nn.Sequential(*layers)
        self.final_layer = nn.Conv2d(channels, out_channels, final_kernel_size, padding=final_kernel_size // 2)
        _init_head(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, h, w] -> heatmaps [N, K, h * 2^d, w * 2^d]."""
        return self.final_layer(self.deconv_layers(x))


@MODELS.register_module()
class SimpleHeatmapHead(nn.Module):
    """ViTPose's simple decoder: ReLU and bilinear upsampling (in the official code's order), one conv.

    Args:
        in_channels: channels of the backbone map.
        out_channels: number of keypoints.
        scale_factor: bilinear upsampling factor (4: stride 16 -> 4).
        kernel_size: kernel of the conv (3).
    """

    def __init__(self, in_channels: int, out_channels: int = 17, scale_factor: float = 4.0,
                 kernel_size: int = 3) -> None:
        super().__init__()
        self.scale_factor = scale_factor
        self.final_layer = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        _init_head(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, C, h, w] -> heatmaps [N, K, h * s, w * s]."""
        # ReLU before the upsampling, as the official ViTPose and mmpose code do (the paper lists it after)
        x = F.interpolate(F.relu(x), scale_factor=self.scale_factor, mode='bilinear', align_corners=False)
        return self.final_layer(x)


__all__ = ['HeatmapHead', 'KeypointMSELoss', 'SimpleHeatmapHead']
