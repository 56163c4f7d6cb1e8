"""An unlabeled pretraining pool from the same visual world as the labeled synthetic tasks.

ImageNet shares its world with COCO and ADE20K (objects, textures, people, clutter) without carrying their
labels; this pool plays that part for the synthetic tasks. Each image is drawn by one of the task generators'
scene functions, in turn: shape instances on striped backgrounds (detection), mottled / striped stuff with
things and clutter (segmentation), stick figures with occluders (pose) and single class shapes (classification).
Only the pixels are written: no annotation exists, so pretraining cannot see a label. A different seed from the
labeled sets' keeps the pool's images distinct from the images the tasks fine-tune and evaluate on.
"""
from pathlib import Path
from typing import Callable, Dict, List, Tuple, Union

import numpy as np
from PIL import Image

from .ade import random_labelled_scene
from .classes import CLASS_NAMES, class_colour, class_image
from .coco import random_instance_scene
from .pose import random_pose_image


def _shapes_image(rng: np.random.Generator, height: int, width: int) -> Image.Image:
    label = int(rng.integers(len(CLASS_NAMES)))
    return class_image(CLASS_NAMES[label], rng, height, width, class_colour(label, len(CLASS_NAMES), rng, 0.5))


# kind -> (draw one image, (min, max) side of that task's images)
POOL_KINDS: Dict[str, Tuple[Callable[[np.random.Generator, int, int], Image.Image], Tuple[int, int]]] = {
    'objects': (lambda rng, h, w: random_instance_scene(rng, h, w)[0], (112, 160)),
    'scenes': (lambda rng, h, w: random_labelled_scene(rng, h, w)[0], (96, 192)),
    'figures': (lambda rng, h, w: random_pose_image(rng, h, w)[0], (128, 192)),
    'shapes': (_shapes_image, (72, 96)),
}


def generate_unlabeled_pool(out_dir: Union[str, Path], num_images: int = 2048, seed: int = 1000) -> List[Path]:
    """Write `num_images` unlabeled images, `scene_<index>.png`, cycling through `POOL_KINDS`; return their paths.

    The same seed always writes the same images; each image has its own random stream (seed, index), so a
    larger pool extends a smaller one of the same seed.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    draws = list(POOL_KINDS.values())
    paths = []
    for index in range(num_images):
        draw, (low, high) = draws[index % len(draws)]
        rng = np.random.default_rng([seed, index])
        height, width = (int(v) for v in rng.integers(low, high + 1, size=2))
        path = out_dir / f'scene_{index:05d}.png'
        draw(rng, height, width).save(path)
        paths.append(path)
    return paths
