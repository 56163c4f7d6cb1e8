"""A procedural semantic-segmentation set in the ADE20K layout, deterministic by seed (tests and the demo).

Layout, file types and label convention are ADE20K's (`ADEChallengeData2016`), so mmseg's ADE pipeline with
`reduce_zero_label=True` behaves exactly as on the real data::

    <root>/images/training/synth_00000.jpg        <root>/annotations/training/synth_00000.png
    <root>/images/validation/synth_00000.jpg      <root>/annotations/validation/synth_00000.png

Annotation PNGs are single-channel: 0 = other / unlabeled (ignored after `reduce_zero_label`, which maps it to
255 and every class id k >= 1 to k - 1), and 1..len(CLASSES) the classes below. A scene is two kinds of
"stuff" split by a random line (striped and mottled texture) with a few flat-coloured "things" (ellipses,
rectangles, triangles, reusing `images.py`) on top. Like real classes (sky is blue-ish, grass
green-ish), each class has a typical hue (`CLASS_HUES`, jittered), so colour, texture and shape all carry the
class and a tiny model learns it in minutes. As in ADE20K, thin object outlines and a few clutter blobs are
labelled 0, so the ignore label really occurs.
"""
import colorsys
from pathlib import Path
from typing import Dict, List, Tuple, Union

import numpy as np
from PIL import Image, ImageDraw

from .images import SHAPE_KINDS, random_shape_polygon, textured_background

# Class k + 1 in the PNGs is CLASSES[k] (index k after reduce_zero_label). configs/seg/*synthetic* repeat these.
CLASSES: Tuple[str, ...] = ('stripes', 'mottle', 'ellipse', 'rectangle', 'triangle')
PALETTE: Tuple[Tuple[int, int, int], ...] = ((120, 120, 120), (4, 200, 3), (220, 20, 60), (0, 102, 200),
                                             (255, 184, 6))
METAINFO = dict(classes=CLASSES, palette=[list(colour) for colour in PALETTE])
# Typical hue of each class (HSV hue in [0, 1)), jittered by +-HUE_JITTER per region; saturation and value vary.
CLASS_HUES = dict(stripes=0.58, mottle=0.30, ellipse=0.0, rectangle=0.78, triangle=0.13)
HUE_JITTER = 0.04
OUTLINE_WIDTH = 2  # pixels of label 0 around every thing, like ADE20K's unlabeled object boundaries
SPLITS = ('training', 'validation')


def class_colour(rng: np.random.Generator, name: str, value_range: Tuple[float, float] = (0.35, 1.0)) -> np.ndarray:
    """An RGB colour [3] (float, 0-255) near the class's typical hue, random saturation and value."""
    hue = (CLASS_HUES[name] + rng.uniform(-HUE_JITTER, HUE_JITTER)) % 1.0
    rgb = colorsys.hsv_to_rgb(hue, rng.uniform(0.45, 1.0), rng.uniform(*value_range))
    return np.asarray(rgb, dtype=np.float32) * 255


def tinted(texture: np.ndarray, dark: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Recolour a texture [H, W, 3] by its luminance, from `dark` to `light`: [H, W, 3] uint8."""
    luminance = texture.astype(np.float32).mean(axis=-1, keepdims=True)  # [H, W, 1]
    weight = (luminance - luminance.min()) / max(float(luminance.max() - luminance.min()), 1.0)
    return (dark + (light - dark) * weight).clip(0, 255).astype(np.uint8)


def mottled_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A [H, W, 3] uint8 texture of soft blotches: coarse random noise upsampled, mixing two colours."""
    cell = int(rng.integers(6, 14))
    coarse = rng.uniform(0, 1, size=(height // cell + 2, width // cell + 2)).astype(np.float32)
    blend = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize(
        (coarse.shape[1] * cell, coarse.shape[0] * cell), Image.BICUBIC), dtype=np.float32)[:height, :width] / 255
    colours = rng.uniform(0, 255, size=(2, 3)).astype(np.float32)
    image = colours[0] + (colours[1] - colours[0]) * blend[..., None]  # [H, W, 3]
    image += rng.normal(0, 10, size=image.shape)  # fine grain
    return image.clip(0, 255).astype(np.uint8)


def _half_plane(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """[H, W] bool: one side of a random line through the image (not too close to a border)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    return (xs - cx) * np.cos(angle) + (ys - cy) * np.sin(angle) > 0


def _clutter_polygon(rng: np.random.Generator, height: int, width: int) -> List[Tuple[float, float]]:
    """An irregular star-like blob (ADE's 'other' stuff): 7-12 vertices at random radii."""
    radius = rng.uniform(0.05, 0.12) * min(height, width)
    cx, cy = rng.uniform(radius, width - radius), rng.uniform(radius, height - radius)
    angles = np.sort(rng.uniform(0, 2 * np.pi, size=int(rng.integers(7, 13))))
    radii = radius * rng.uniform(0.4, 1.0, size=angles.shape)
    return list(zip(cx + radii * np.cos(angles), cy + radii * np.sin(angles)))


def random_labelled_scene(rng: np.random.Generator, height: int, width: int,
                          max_things: int = 4) -> Tuple[Image.Image, np.ndarray]:
    """One RGB scene and its ADE-style label map [H, W] uint8 (0 = other, k = CLASSES[k - 1])."""
    stuff = _half_plane(rng, height, width)
    stripes = tinted(textured_background(rng, height, width), class_colour(rng, 'stripes', (0.2, 0.5)),
                     class_colour(rng, 'stripes', (0.7, 1.0)))
    mottle = tinted(mottled_texture(rng, height, width), class_colour(rng, 'mottle', (0.2, 0.5)),
                    class_colour(rng, 'mottle', (0.7, 1.0)))
    pixels = np.where(stuff[..., None], mottle, stripes)  # [H, W, 3]
    labels = np.where(stuff, CLASSES.index('mottle') + 1, CLASSES.index('stripes') + 1).astype(np.uint8)
    image, label_map = Image.fromarray(pixels), Image.fromarray(labels)
    draw_image, draw_label = ImageDraw.Draw(image), ImageDraw.Draw(label_map)
    for _ in range(int(rng.integers(1, max_things + 1))):
        kind = SHAPE_KINDS[int(rng.integers(len(SHAPE_KINDS)))]
        polygon = random_shape_polygon(rng, height, width, kind, min_size=0.2, max_size=0.55)
        colour = tuple(int(c) for c in class_colour(rng, kind))
        draw_image.polygon(polygon, fill=colour, outline=tuple(c // 2 for c in colour), width=OUTLINE_WIDTH)
        draw_label.polygon(polygon, fill=CLASSES.index(kind) + 1, outline=0, width=OUTLINE_WIDTH)
    for _ in range(int(rng.integers(0, 3))):  # clutter on top: label 0 regions inside the image too
        polygon = _clutter_polygon(rng, height, width)
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        draw_image.polygon(polygon, fill=colour)
        draw_label.polygon(polygon, fill=0)
    return image, np.asarray(label_map, dtype=np.uint8)


def generate_ade_dataset(root: Union[str, Path], num_train: int = 256, num_val: int = 32, seed: int = 0,
                         size_range: Tuple[int, int] = (96, 192)) -> Dict[str, List[Path]]:
    """Write the training and validation splits under `root` in the ADE20K layout; return the image paths.

    Args:
        root: dataset root (the equivalent of `ADEChallengeData2016`).
        num_train: images in `images/training`.
        num_val: images in `images/validation`.
        seed: the same seed always writes the same files (validation scenes never repeat training ones).
        size_range: inclusive range of each image side; sides are drawn independently (non-square).

    Returns:
        {'training': [jpg paths], 'validation': [jpg paths]}.
    """
    root = Path(root)
    written: Dict[str, List[Path]] = {}
    for split_index, (split, count) in enumerate(zip(SPLITS, (num_train, num_val))):
        image_dir, label_dir = root / 'images' / split, root / 'annotations' / split
        image_dir.mkdir(parents=True, exist_ok=True)
        label_dir.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([seed, split_index])
        written[split] = []
        for index in range(count):
            height, width = (int(side) for side in rng.integers(size_range[0], size_range[1] + 1, size=2))
            image, labels = random_labelled_scene(rng, height, width)
            stem = f'synth_{index:05d}'
            image.save(image_dir / f'{stem}.jpg', quality=95)
            Image.fromarray(labels).save(label_dir / f'{stem}.png')
            written[split].append(image_dir / f'{stem}.jpg')
    return written


def main() -> None:
    import argparse
    parser = argparse.ArgumentParser(description='Write the synthetic ADE20K-layout segmentation set')
    parser.add_argument('root', nargs='?', default='data/synthetic_seg')
    parser.add_argument('--num-train', type=int, default=256)
    parser.add_argument('--num-val', type=int, default=32)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    written = generate_ade_dataset(args.root, args.num_train, args.num_val, args.seed)
    print(f'{args.root}: {len(written["training"])} training, {len(written["validation"])} validation images')


if __name__ == '__main__':
    main()
