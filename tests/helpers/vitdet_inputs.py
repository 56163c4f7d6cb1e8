"""What the two ViTDet parity tests (mmdet's release, detectron2's release) share: random weights that make a
detector detect, and a real photo prepared as both libraries feed their models."""
from typing import Tuple

import mmcv
import numpy as np
import torch

from helpers.paths import REPO

PHOTO = REPO / 'tests' / 'data' / 'coco_sample' / 'val2017' / '000000040083.jpg'
MEAN, STD = np.array([123.675, 116.28, 103.53]), np.array([58.395, 57.12, 57.375])  # RGB, both libraries


def randomise(model: torch.nn.Module, class_logits: str, seed: int = 0) -> None:
    """Every tensor random and O(1)-scaled (norm scales near 1, rel-pos tables away from their zero init), and
    class logits (the weight whose name ends in `class_logits`) spread enough that detections pass the 0.05 score
    threshold."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if param.ndim == 1 and name.endswith('.weight'):
                param.copy_(1.0 + 0.1 * noise)
            elif 'rel_pos' in name:
                param.copy_(0.1 * noise)
            elif name.endswith(class_logits):
                param.copy_(0.3 * noise)
            else:
                param.copy_(0.02 * noise if name.endswith('bias') else noise * param[0].numel() ** -0.5)


def photo_input(size: int) -> Tuple[torch.Tensor, Tuple[int, int], Tuple[int, int]]:
    """(the photo resized to a longer side of `size`, normalised RGB, zero-padded to [1, 3, size, size]; its resized
    (h, w); its original (h, w))."""
    image = mmcv.imread(str(PHOTO))  # BGR [H, W, 3]
    height, width = image.shape[:2]
    scale = size / max(height, width)
    resized = mmcv.imresize(image, (round(width * scale), round(height * scale)))
    rgb = (resized[..., ::-1] - MEAN) / STD
    inputs = torch.zeros(1, 3, size, size)
    inputs[0, :, :rgb.shape[0], :rgb.shape[1]] = torch.from_numpy(rgb.transpose(2, 0, 1).copy()).float()
    return inputs, resized.shape[:2], (height, width)


def relative(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """|ours - theirs| / |theirs| (Frobenius norms)."""
    return ((ours - theirs).norm() / theirs.norm()).item()
