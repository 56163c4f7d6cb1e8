"""Semantic segmentation pictures: class colours blended over the image, a legend of the classes found."""
from typing import Sequence

import numpy as np
from PIL import Image

from .palette import legend


def draw_segmentation(image: np.ndarray, label_map: np.ndarray, classes: Sequence[str],
                      palette: Sequence[Sequence[int]], alpha: float = 0.5,
                      ignore_index: int = 255, with_legend: bool = True) -> Image.Image:
    """The image with each class blended in its colour, and a legend of the classes found (largest first).

    Args:
        image: RGB uint8 [H, W, 3].
        label_map: class indices [H, W] (`ignore_index` pixels stay uncoloured).
        classes: class names, indexed by label.
        palette: RGB colour per class.
        alpha: weight of the class colour in the overlay.
        ignore_index: label drawn without colour.
        with_legend: add the legend; without it the picture has the image's size (video frames).

    Returns:
        RGB picture: overlay on the left, legend (colour, name, share of pixels) on the right.
    """
    if image.shape[:2] != label_map.shape:
        raise ValueError(f'image {image.shape[:2]} and label map {label_map.shape} differ in size')
    colours = np.zeros((max(len(classes), 1) + 1, 3), dtype=np.float32)  # last row: ignored / unknown
    colours[:len(palette)] = np.asarray(palette, dtype=np.float32)[:len(colours) - 1]
    valid = (label_map >= 0) & (label_map < len(classes)) & (label_map != ignore_index)
    index = np.where(valid, label_map, len(colours) - 1)  # [H, W]
    blended = image.astype(np.float32) * (1 - alpha) + colours[index] * alpha  # [H, W, 3]
    overlay = np.where(valid[..., None], blended, image.astype(np.float32)).round().clip(0, 255).astype(np.uint8)
    if not with_legend:
        return Image.fromarray(overlay)

    found, counts = np.unique(label_map[valid], return_counts=True)
    order = np.argsort(-counts)
    height, width = label_map.shape
    entries = [(tuple(int(c) for c in colours[int(found[i])]),
                f'{classes[int(found[i])]}  {100 * counts[i] / label_map.size:.1f}%') for i in order]
    panel = legend(entries or [(None, 'no class found')], font_size=int(np.clip(height / 24, 11, 22)),
                   min_height=height)
    canvas = Image.new('RGB', (width + panel.width, panel.height), (255, 255, 255))
    canvas.paste(Image.fromarray(overlay), (0, 0))
    canvas.paste(panel, (width, 0))
    return canvas


__all__ = ['draw_segmentation']
