"""Reconstruction pictures the way the MAE paper shows them: masked | reconstruction | original.

The reconstruction row pastes the visible patches back, so only the removed patches show the model's output.
A model trained with norm_pix_loss predicts each patch normalised by its own mean and std; those are taken
from the original image's patch to bring the prediction back to pixels.
"""
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image, ImageDraw
from torchvision.transforms import v2 as T

from ..datasets.image_folder import load_rgb

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ROW_TITLES = ('masked', 'reconstruction + visible', 'original')


def load_images(paths: Sequence[Union[str, Path]], img_size: Union[int, Tuple[int, int]],
                mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """Load images as a normalised batch [N, 3, H, W]: shorter side resized, then centre-cropped to img_size."""
    size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    transform = T.Compose([
        T.PILToTensor(),
        T.Resize(min(size), interpolation=T.InterpolationMode.BICUBIC, antialias=True),
        T.CenterCrop(size),
        T.ToDtype(torch.float32, scale=True),
        T.Normalize(mean, std),
    ])
    return torch.stack([transform(load_rgb(Path(path))) for path in paths])


@torch.no_grad()
def reconstruct(model: torch.nn.Module, imgs: torch.Tensor, mask_ratio: float = 0.75,
                noise: Optional[torch.Tensor] = None, mean: Sequence[float] = IMAGENET_MEAN,
                std: Sequence[float] = IMAGENET_STD) -> Dict[str, torch.Tensor]:
    """Run `model` (a MaskedAutoencoderViT) on normalised `imgs` [N, 3, H, W] and return pixel images in [0, 1].

    Returns a dict of [N, 3, H, W] tensors: 'masked' (removed patches grey), 'reconstruction' (prediction in
    the removed patches, the original in the visible ones), 'prediction' (raw prediction everywhere) and
    'original'; plus 'mask' [N, L] (1 = removed) and the loss.
    """
    was_training = model.training
    model.eval()
    loss, pred, mask = model(imgs, mask_ratio=mask_ratio, noise=noise)  # pred: [N, L, p*p*3], mask: [N, L]
    model.train(was_training)
    grid_hw = (imgs.shape[2] // model.patch_size, imgs.shape[3] // model.patch_size)
    target = model.patchify(imgs)  # [N, L, p*p*3]
    if model.norm_pix_loss:
        patch_mean = target.mean(dim=-1, keepdim=True)
        patch_var = target.var(dim=-1, keepdim=True)
        pred = pred * (patch_var + 1.e-6) ** 0.5 + patch_mean
    removed = mask.unsqueeze(-1)  # [N, L, 1]
    pasted = target * (1 - removed) + pred * removed
    masked = target * (1 - removed)

    mean_t = torch.tensor(mean, device=imgs.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=imgs.device).view(1, 3, 1, 1)

    def to_pixels(patches: torch.Tensor) -> torch.Tensor:
        images = model.unpatchify(patches, grid_hw)  # [N, 3, H, W], normalised
        return (images * std_t + mean_t).clamp(0, 1)

    removed_pixels = _patch_mask_to_pixels(mask, model.patch_size, grid_hw)  # [N, 1, H, W]
    masked_pixels = to_pixels(masked) * (1 - removed_pixels) + 0.5 * removed_pixels  # removed patches: grey
    return dict(masked=masked_pixels, reconstruction=to_pixels(pasted), prediction=to_pixels(pred),
                original=(imgs * std_t + mean_t).clamp(0, 1), mask=mask, loss=loss)


def _patch_mask_to_pixels(mask: torch.Tensor, patch_size: int, grid_hw) -> torch.Tensor:
    """[N, L] patch mask -> [N, 1, H, W] pixel mask."""
    n = mask.shape[0]
    mask = mask.view(n, 1, grid_hw[0], grid_hw[1])  # [N, 1, h, w]
    return mask.repeat_interleave(patch_size, dim=2).repeat_interleave(patch_size, dim=3)  # [N, 1, H, W]


def reconstruction_grid(result: Dict[str, torch.Tensor], title: str = '', pad: int = 4) -> Image.Image:
    """One picture: a column per image, rows masked | reconstruction + visible | original, with labels."""
    rows = [result['masked'], result['reconstruction'], result['original']]
    n, _, h, w = rows[0].shape
    label_w, title_h = 150, (18 if title else 0)
    canvas = Image.new('RGB', (label_w + n * (w + pad) + pad, title_h + 3 * (h + pad) + pad), 'white')
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((pad, 3), title, fill='black')
    for r, (row, name) in enumerate(zip(rows, ROW_TITLES)):
        top = title_h + pad + r * (h + pad)
        draw.text((pad, top + h // 2 - 6), name, fill='black')
        for c in range(n):
            pixels = (row[c].permute(1, 2, 0).float().cpu().numpy() * 255).round().astype(np.uint8)  # [H, W, 3]
            canvas.paste(Image.fromarray(pixels), (label_w + pad + c * (w + pad), top))
    return canvas
