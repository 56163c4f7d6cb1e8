"""Procedural images, deterministic by seed: the built-in data for the demo and the tests (no downloads).

A scene is a textured background (a colour gradient plus oriented sinusoidal stripes and noise) with a few
filled shapes (ellipses, rectangles, triangles) on top. That gives MAE something learnable: edges, flat
regions and periodic texture that can be inferred from visible neighbours. The pieces are separate functions
so the detection and segmentation generators can draw the same kind of scene with labelled shapes.
"""
from pathlib import Path
from typing import List, Tuple, Union

import numpy as np
from PIL import Image, ImageDraw

SHAPE_KINDS = ('ellipse', 'rectangle', 'triangle')


def textured_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A [H, W, 3] uint8 background: two-colour gradient, sinusoidal stripes, mild noise."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)  # ys, xs: [H, W]
    angle = rng.uniform(0, np.pi)
    along = (xs * np.cos(angle) + ys * np.sin(angle)) / max(height, width)  # [H, W], about 0..1.4
    start, end = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
    image = start + (end - start) * along[..., None].clip(0, 1)  # [H, W, 3]
    period = rng.uniform(6, 24)
    stripe_angle = rng.uniform(0, np.pi)
    phase = (xs * np.cos(stripe_angle) + ys * np.sin(stripe_angle)) * 2 * np.pi / period
    image += rng.uniform(10, 40) * np.sin(phase)[..., None]
    image += rng.normal(0, 6, size=image.shape)
    return image.clip(0, 255).astype(np.uint8)


def random_shape_polygon(rng: np.random.Generator, height: int, width: int, kind: str,
                         min_size: float = 0.15, max_size: float = 0.5) -> List[Tuple[float, float]]:
    """Vertices (x, y) of a random shape of `kind`; ellipses come as 32-gons so a polygon describes all kinds."""
    side = min(height, width)
    w, h = rng.uniform(min_size, max_size, size=2) * side
    cx, cy = rng.uniform(w / 2, width - w / 2), rng.uniform(h / 2, height - h / 2)
    if kind == 'ellipse':
        t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        return list(zip(cx + w / 2 * np.cos(t), cy + h / 2 * np.sin(t)))
    if kind == 'rectangle':
        return [(cx - w / 2, cy - h / 2), (cx + w / 2, cy - h / 2), (cx + w / 2, cy + h / 2), (cx - w / 2, cy + h / 2)]
    if kind == 'triangle':
        return [(cx, cy - h / 2), (cx + w / 2, cy + h / 2), (cx - w / 2, cy + h / 2)]
    raise ValueError(f'unknown shape kind {kind!r}; expected one of {SHAPE_KINDS}')


def draw_polygon(image: Image.Image, polygon: List[Tuple[float, float]], rng: np.random.Generator) -> None:
    """Fill `polygon` on `image` in place with a random colour and a darker outline."""
    colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
    outline = tuple(c // 2 for c in colour)
    ImageDraw.Draw(image).polygon(polygon, fill=colour, outline=outline)


def random_scene(rng: np.random.Generator, height: int, width: int, max_shapes: int = 4) -> Image.Image:
    image = Image.fromarray(textured_background(rng, height, width))
    for _ in range(rng.integers(1, max_shapes + 1)):
        kind = SHAPE_KINDS[rng.integers(len(SHAPE_KINDS))]
        draw_polygon(image, random_shape_polygon(rng, height, width, kind), rng)
    return image


def generate_images(out_dir: Union[str, Path], num_images: int = 64, seed: int = 0,
                    size_range: Tuple[int, int] = (96, 192)) -> List[Path]:
    """Write `num_images` scenes of random (non-square) size as PNG files; return their paths.

    The same seed always writes the same images; existing files of the same name are overwritten.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(num_images):
        height, width = rng.integers(size_range[0], size_range[1] + 1, size=2)
        path = out_dir / f'scene_{index:05d}.png'
        random_scene(rng, int(height), int(width)).save(path)
        paths.append(path)
    return paths
