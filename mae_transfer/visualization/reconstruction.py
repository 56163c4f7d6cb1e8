"""MAE reconstruction pictures the way the paper shows them: masked | reconstruction + visible | original."""
from typing import Dict

import numpy as np
import torch
from PIL import Image, ImageDraw

ROW_TITLES = ('masked', 'reconstruction + visible', 'original')


def reconstruction_grid(result: Dict[str, torch.Tensor], title: str = '', pad: int = 4) -> Image.Image:
    """One picture: a column per image, rows masked | reconstruction + visible | original, with labels.

    Args:
        result: what `mae_transfer.models.reconstruction.reconstruct` returns ([N, 3, H, W] images in [0, 1]).
        title: written above the grid.
        pad: pixels between the pictures.
    """
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


__all__ = ['reconstruction_grid']
