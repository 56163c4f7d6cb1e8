"""A small procedural classification set, deterministic by seed: the built-in data of the classification demo,
benchmark and tests (no downloads).

Each image is a textured background (`images.textured_background`) with one large filled shape
whose kind is the class (ellipse, rectangle, triangle, hexagon, star, cross, arrow, crescent) at a random
size, position and rotation. The shape's hue is drawn around a class-specific hue with a spread wide enough
that neighbouring classes overlap (`hue_spread`): colour is a weak cue, as in natural images, which even a
linear probe on random features picks up, while telling the classes apart well needs the shape. The images
are written in the ImageNet layout, `out_dir/{train,val}/<class>/<class>_<index>.png`, which
`ClassFolderDataset` reads.
"""
import colorsys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageDraw

from .images import draw_polygon, textured_background

CLASS_NAMES = ('ellipse', 'rectangle', 'triangle', 'hexagon', 'star', 'cross', 'arrow', 'crescent')

Polygon = List[Tuple[float, float]]


def _unit_outline(kind: str, rng: np.random.Generator) -> np.ndarray:
    """Vertices [V, 2] of a shape of `kind` inside the unit disc, centred at 0."""
    if kind == 'ellipse':
        t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
        aspect = rng.uniform(0.55, 1.0)
        return np.stack([np.cos(t), aspect * np.sin(t)], axis=1)
    if kind == 'rectangle':
        aspect = rng.uniform(0.45, 1.0)
        return np.array([[-1, -aspect], [1, -aspect], [1, aspect], [-1, aspect]], dtype=float) / np.sqrt(2)
    if kind == 'triangle':
        t = np.pi / 2 + np.arange(3) * 2 * np.pi / 3
        return np.stack([np.cos(t), np.sin(t)], axis=1)
    if kind == 'hexagon':
        t = np.arange(6) * np.pi / 3
        return np.stack([np.cos(t), np.sin(t)], axis=1)
    if kind == 'star':
        t = np.pi / 2 + np.arange(10) * np.pi / 5
        radius = np.where(np.arange(10) % 2 == 0, 1.0, 0.42)
        return np.stack([radius * np.cos(t), radius * np.sin(t)], axis=1)
    if kind == 'cross':
        a = 0.3  # half width of the bars
        return np.array([[-a, -1], [a, -1], [a, -a], [1, -a], [1, a], [a, a], [a, 1], [-a, 1], [-a, a], [-1, a],
                         [-1, -a], [-a, -a]], dtype=float)
    if kind == 'arrow':
        return np.array([[-1, -0.25], [0.2, -0.25], [0.2, -0.65], [1, 0], [0.2, 0.65], [0.2, 0.25], [-1, 0.25]],
                        dtype=float)
    if kind == 'crescent':
        t = np.linspace(-np.pi / 2, np.pi / 2, 20)
        outer = np.stack([np.cos(t), np.sin(t)], axis=1)  # right half of the unit circle
        inner = np.stack([0.45 * np.cos(t[::-1]), np.sin(t[::-1])], axis=1)  # back along a flatter arc
        return np.concatenate([outer, inner]) - np.array([0.35, 0.0])
    raise ValueError(f'unknown class shape {kind!r}; expected one of {CLASS_NAMES}')


def class_shape_polygon(kind: str, rng: np.random.Generator, height: int, width: int,
                        size_range: Tuple[float, float] = (0.45, 0.8)) -> Polygon:
    """Vertices (x, y) of a randomly rotated, scaled and placed shape of `kind` that fits in the image."""
    outline = _unit_outline(kind, rng)  # [V, 2]
    angle = rng.uniform(0, 2 * np.pi)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    radius = rng.uniform(*size_range) * min(height, width) / 2
    points = outline @ rotation.T * radius  # [V, 2]
    low, high = points.min(axis=0), points.max(axis=0)
    cx = rng.uniform(-low[0], width - high[0]) if width - high[0] > -low[0] else width / 2
    cy = rng.uniform(-low[1], height - high[1]) if height - high[1] > -low[1] else height / 2
    return [(float(x + cx), float(y + cy)) for x, y in points]


def class_colour(index: int, num_classes: int, rng: np.random.Generator,
                 hue_spread: Optional[float] = 0.5) -> Tuple[int, int, int]:
    """A fill colour for class `index`: hue normal around index / num_classes with std `hue_spread` class
    spacings (None: any colour), saturation and value in 0.5-1."""
    if hue_spread is None:
        return tuple(int(c) for c in rng.integers(0, 256, size=3))
    hue = (index + rng.normal(0.0, hue_spread)) / num_classes % 1.0
    red, green, blue = colorsys.hsv_to_rgb(hue, rng.uniform(0.5, 1.0), rng.uniform(0.5, 1.0))
    return int(red * 255), int(green * 255), int(blue * 255)


def class_image(kind: str, rng: np.random.Generator, height: int, width: int,
                colour: Optional[Tuple[int, int, int]] = None) -> Image.Image:
    """One image of class `kind`: textured background + the class shape (`colour`, random when left out)
    with a dark outline."""
    image = Image.fromarray(textured_background(rng, height, width))
    polygon = class_shape_polygon(kind, rng, height, width)
    if colour is None:
        draw_polygon(image, polygon, rng)
    else:
        ImageDraw.Draw(image).polygon(polygon, fill=colour)
    ImageDraw.Draw(image).line(polygon + polygon[:1], fill=(0, 0, 0), width=max(1, min(height, width) // 64))
    return image


def generate_class_folders(out_dir: Union[str, Path], num_classes: int = len(CLASS_NAMES),
                           train_per_class: int = 64, val_per_class: int = 16, image_size: Tuple[int, int] = (72, 96),
                           seed: int = 0, splits: Sequence[str] = ('train', 'val'),
                           hue_spread: Optional[float] = 0.5) -> Dict[str, List[Path]]:
    """Write the class-folder set; return the written paths per split.

    Args:
        out_dir: root; images go to `out_dir/<split>/<class>/`.
        num_classes: how many of `CLASS_NAMES` to use (the first ones).
        train_per_class: images per class in 'train'.
        val_per_class: images per class in 'val' (and any other split).
        image_size: (min, max) side; each image gets a random height and width in that range.
        seed: the same seed writes the same images; each split has its own stream, so adding images to one
            split does not change the other.
        splits: split names to write.
        hue_spread: std of the shape's hue around its class hue, in class spacings (`class_colour`); None
            gives every shape a uniformly random colour (shape is then the only cue).
    """
    if not 1 <= num_classes <= len(CLASS_NAMES):
        raise ValueError(f'num_classes must be in 1 .. {len(CLASS_NAMES)}, got {num_classes}')
    out_dir = Path(out_dir)
    written: Dict[str, List[Path]] = {}
    for split_index, split in enumerate(splits):
        count = train_per_class if split == 'train' else val_per_class
        rng = np.random.default_rng([seed, split_index])
        paths = []
        for index in range(count):
            for label, kind in enumerate(CLASS_NAMES[:num_classes]):
                height, width = (int(v) for v in rng.integers(image_size[0], image_size[1] + 1, size=2))
                path = out_dir / split / kind / f'{kind}_{index:05d}.png'
                path.parent.mkdir(parents=True, exist_ok=True)
                colour = class_colour(label, num_classes, rng, hue_spread)
                class_image(kind, rng, height, width, colour).save(path)
                paths.append(path)
        written[split] = paths
    return written


__all__ = ['CLASS_NAMES', 'class_colour', 'class_image', 'class_shape_polygon', 'generate_class_folders']
