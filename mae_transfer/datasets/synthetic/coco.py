"""A procedural COCO-format instance dataset, deterministic by seed: the detection data of the tests and demo.

Each image is a textured background (`images.textured_background`) with 0 to `max_shapes` filled
shapes of three classes (ellipse, rectangle, triangle). Shapes are drawn one after the other, so later ones
occlude earlier ones; a placement that would hide more than `1 - min_visible` of an earlier shape, or punch a
hole into it (polygons cannot describe holes), is redrawn.
Each annotation describes the *visible* part:

- segmentation: the shape's own polygon when nothing covers it, else the outer contours of its visible mask
  (one polygon per visible piece, as COCO does for split objects);
- bbox `[x, y, w, h]` and area from the visible mask; iscrowd 0.

A fraction `empty_fraction` of the images holds no shape at all (the train set then has images that mmdet's
`filter_empty_gt` drops and the val set has images that count only for false positives).

Layout written under `root` (the COCO one, with split names of our own)::

    root/train/000000.jpg ...           root/annotations/instances_train.json
    root/val/000000.jpg ...             root/annotations/instances_val.json

    python -m mae_transfer.datasets.synthetic.coco data/synthetic_det --num-train 256 --num-val 64
"""
import argparse
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageDraw

from .images import SHAPE_KINDS, draw_polygon, random_shape_polygon, textured_background

CLASSES: Tuple[str, ...] = SHAPE_KINDS  # category ids 1, 2, 3 in this order
Polygon = List[Tuple[float, float]]


def polygon_mask(polygon: Polygon, height: int, width: int) -> np.ndarray:
    """[H, W] bool mask of the pixels `draw_polygon` paints for `polygon` (fill and outline)."""
    canvas = Image.new('L', (width, height), 0)
    ImageDraw.Draw(canvas).polygon(polygon, fill=1, outline=1)
    return np.asarray(canvas, dtype=bool)


def mask_to_polygons(mask: np.ndarray) -> List[List[float]]:
    """Outer contours of a binary mask as COCO polygons [x1, y1, x2, y2, ...] (pieces of < 3 points dropped)."""
    import cv2  # opencv comes with mmcv; imported here to keep `mae_transfer.datasets` light
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    # contours: tuple of [K, 1, 2] int arrays (x, y); pixel centres sit at +0.5 in COCO's continuous frame
    return [[float(v) + 0.5 for v in contour.reshape(-1)] for contour in contours if len(contour) >= 3]


def has_holes(mask: np.ndarray) -> bool:
    """Whether a binary mask encloses background (a polygon outline cannot describe that)."""
    import cv2
    _, hierarchy = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    # hierarchy: [1, K, 4] (next, previous, first child, parent); holes are the contours with a parent
    return hierarchy is not None and bool((hierarchy[0, :, 3] >= 0).any())


def mask_bbox(mask: np.ndarray) -> List[float]:
    """COCO box [x, y, w, h] enclosing the True pixels of a non-empty [H, W] mask."""
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def random_instance_scene(rng: np.random.Generator, height: int, width: int, max_shapes: int = 4,
                          empty_fraction: float = 0.1, min_visible: float = 0.5, min_size: float = 0.2,
                          max_size: float = 0.55, max_tries: int = 10) -> Tuple[Image.Image, List[dict]]:
    """One image and its instances.

    Args:
        rng: the random generator (the only source of randomness).
        height: image height.
        width: image width.
        max_shapes: most shapes in one image (at least 1 unless the image is drawn empty).
        empty_fraction: probability that the image holds no shape.
        min_visible: smallest visible fraction of a shape's own area that a later shape may leave.
        min_size: smallest shape side relative to the shorter image side.
        max_size: largest shape side relative to the shorter image side.
        max_tries: placements tried per shape before it is left out.

    Returns:
        (RGB image, instances as dicts with `label` (0-based index into CLASSES), `polygon` (the full shape),
        `mask` (visible pixels, [H, W] bool) and `occluded`).
    """
    image = Image.fromarray(textured_background(rng, height, width))
    num_shapes = 0 if rng.random() < empty_fraction else int(rng.integers(1, max_shapes + 1))
    instances: List[dict] = []
    for _ in range(num_shapes):
        label = int(rng.integers(len(CLASSES)))
        for _ in range(max_tries):
            polygon = random_shape_polygon(rng, height, width, CLASSES[label], min_size, max_size)
            full = polygon_mask(polygon, height, width)
            remaining = [inst['mask'] & ~full for inst in instances]
            if all(left.sum() >= min_visible * inst['area_full'] and not has_holes(left)
                   for inst, left in zip(instances, remaining)):
                break
        else:
            continue  # no placement leaves the others visible enough: fewer shapes in this image
        for inst in instances:
            covered = inst['mask'] & full
            if covered.any():
                inst['mask'] = inst['mask'] & ~full
                inst['occluded'] = True
        draw_polygon(image, polygon, rng)
        instances.append(dict(label=label, polygon=polygon, mask=full, area_full=int(full.sum()), occluded=False))
    return image, instances


def instance_annotation(instance: dict, ann_id: int, image_id: int) -> dict:
    """The COCO annotation of one instance of `random_instance_scene`."""
    mask = instance['mask']
    if instance['occluded']:
        segmentation = mask_to_polygons(mask)
    else:
        segmentation = [[float(c) for point in instance['polygon'] for c in point]]
    return dict(id=ann_id, image_id=image_id, category_id=instance['label'] + 1, segmentation=segmentation,
                area=float(mask.sum()), bbox=mask_bbox(mask), iscrowd=0)


def generate_split(root: Path, split: str, num_images: int, rng: np.random.Generator,
                   size_range: Tuple[int, int], **scene_options) -> Path:
    """Write `root/<split>/*.jpg` and `root/annotations/instances_<split>.json`; return the json path."""
    image_dir = root / split
    image_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for index in range(num_images):
        height, width = (int(v) for v in rng.integers(size_range[0], size_range[1] + 1, size=2))
        image, instances = random_instance_scene(rng, height, width, **scene_options)
        file_name = f'{index:06d}.jpg'
        image.save(image_dir / file_name, quality=92)
        image_id = index + 1
        images.append(dict(id=image_id, file_name=file_name, height=height, width=width))
        for instance in instances:
            annotations.append(instance_annotation(instance, len(annotations) + 1, image_id))
    categories = [dict(id=i + 1, name=name, supercategory='shape') for i, name in enumerate(CLASSES)]
    coco = dict(info=dict(description=f'mae_transfer synthetic shapes, {split} split'), licenses=[],
                images=images, annotations=annotations, categories=categories)
    ann_file = root / 'annotations' / f'instances_{split}.json'
    ann_file.parent.mkdir(parents=True, exist_ok=True)
    ann_file.write_text(json.dumps(coco))
    return ann_file


def generate_coco_instances(root: Union[str, Path], num_train: int = 256, num_val: int = 64, seed: int = 0,
                            size_range: Tuple[int, int] = (112, 160), splits: Sequence[str] = ('train', 'val'),
                            **scene_options) -> Dict[str, Path]:
    """Write a synthetic COCO instance dataset (layout in the module docstring).

    Args:
        root: dataset folder (created; files of the same name are overwritten).
        num_train: images in the train split.
        num_val: images in the val split.
        seed: the same seed always writes the same files; each split draws from its own stream.
        size_range: inclusive range of image heights and widths (drawn independently: non-square images).
        splits: names of the (train, val) splits.
        scene_options: passed to `random_instance_scene` (max_shapes, empty_fraction, min_visible, ...).

    Returns:
        {split name: annotation file}.
    """
    root = Path(root)
    out = {}
    for stream, (split, count) in enumerate(zip(splits, (num_train, num_val))):
        rng = np.random.default_rng([seed, stream])
        out[split] = generate_split(root, split, count, rng, size_range, **scene_options)
    return out


__all__ = ['CLASSES', 'generate_coco_instances', 'mask_to_polygons', 'polygon_mask', 'random_instance_scene']


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description='Write a synthetic COCO-format instance dataset of shapes')
    parser.add_argument('root', nargs='?', default='data/synthetic_det', help='output folder')
    parser.add_argument('--num-train', type=int, default=256)
    parser.add_argument('--num-val', type=int, default=64)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--size', type=int, nargs=2, default=(112, 160), metavar=('MIN', 'MAX'))
    args = parser.parse_args(argv)
    files = generate_coco_instances(args.root, args.num_train, args.num_val, args.seed, tuple(args.size))
    for split, path in files.items():
        print(f'{split}: {path}')


if __name__ == '__main__':
    main()

