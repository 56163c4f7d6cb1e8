"""A procedural COCO-keypoints dataset of articulated stick figures, deterministic by seed (no downloads).

Each image is a textured background (`images.textured_background`) with 1-3 figures drawn as thick
limbs with the 17 COCO joints (head with eyes, ears and nose; shoulders, elbows, wrists, hips, knees, ankles).
Figures face the camera (the person's left is on the image's right before the in-plane rotation) and are
colour-coded by side (left limbs warm, right limbs cool), so a small model can learn left from right quickly;
mirroring an image would contradict the colour code, so the tiny config trains without flips. Keypoints
covered by a later figure or by an occluding shape are labelled but not visible (v=1); keypoints outside the
image are unlabelled (v=0, x=y=0), as in COCO.

Layout written by `generate_pose_dataset(out_dir)`::

    out_dir/annotations/person_keypoints_{train,val}.json
    out_dir/{train,val}/pose_00000.png ...
    out_dir/person_detection_results_val.json   # noisy "detector" boxes (COCO results format) for bbox_file
"""
import json
from pathlib import Path
from typing import Dict, List, Tuple, Union

import numpy as np
from PIL import Image, ImageDraw

from ...codecs.coco_keypoints import COCO_KEYPOINT_NAMES, COCO_SKELETON
from .images import SHAPE_KINDS, random_shape_polygon, textured_background

# (start, end) joints of the drawn limbs, with the side they belong to: 'L', 'R' or 'C' (centre)
LIMBS = ((5, 7, 'L'), (7, 9, 'L'), (6, 8, 'R'), (8, 10, 'R'), (11, 13, 'L'), (13, 15, 'L'), (12, 14, 'R'),
         (14, 16, 'R'))
LEFT_COLOURS = ((230, 60, 40), (250, 160, 30))  # upper, lower segment
RIGHT_COLOURS = ((40, 90, 230), (40, 200, 220))
AREA_PER_BOX = 0.53  # a COCO person's segment covers about half its box; used as the OKS area


def _unit(angle_deg: float) -> np.ndarray:
    """Direction at `angle_deg` from straight down, positive towards +x."""
    theta = np.deg2rad(angle_deg)
    return np.array([np.sin(theta), np.cos(theta)])


def figure_keypoints(rng: np.random.Generator, height: float) -> np.ndarray:
    """The 17 COCO joints [17, 2] of a random front-facing pose in a body frame (neck at 0, y down)."""
    k = np.zeros((17, 2))
    head = np.array([0.0, -0.13 * height])
    head = head + rng.normal(0, 0.01 * height, 2)
    k[0] = head + [0, 0.02 * height]  # nose
    k[1], k[2] = head + [0.03 * height, -0.01 * height], head + [-0.03 * height, -0.01 * height]  # eyes
    k[3], k[4] = head + [0.06 * height, 0.0], head + [-0.06 * height, 0.0]  # ears
    shoulder, hip_half, hip_y = 0.11 * height, 0.07 * height, 0.34 * height
    k[5], k[6] = [shoulder, 0.0], [-shoulder, 0.0]
    k[11], k[12] = [hip_half, hip_y], [-hip_half, hip_y]
    for side, (s, e, w) in ((1, (5, 7, 9)), (-1, (6, 8, 10))):  # arms: left (+x), right (-x)
        upper = rng.uniform(-30, 160)
        lower = upper + rng.uniform(0, 130) * rng.choice([-1, 1])
        k[e] = k[s] + _unit(side * upper) * 0.17 * height
        k[w] = k[e] + _unit(side * lower) * 0.15 * height
    for side, (h, kn, a) in ((1, (11, 13, 15)), (-1, (12, 14, 16))):  # legs
        thigh = rng.uniform(-15, 55)
        shin = thigh - rng.uniform(0, 90)
        k[kn] = k[h] + _unit(side * thigh) * 0.25 * height
        k[a] = k[kn] + _unit(side * shin) * 0.24 * height
    return k


def _draw_figure(draw: ImageDraw.ImageDraw, owner: ImageDraw.ImageDraw, mask: ImageDraw.ImageDraw,
                 k: np.ndarray, height: float, owner_id: int, rng: np.random.Generator) -> None:
    """Draw one figure on the picture, on the shared owner map (pixel -> figure id) and on its own mask."""
    width = max(2, int(round(0.045 * height)))
    joint_r = max(1.5, 0.03 * height)
    head_r = 0.075 * height
    torso = [tuple(k[5]), tuple(k[6]), tuple(k[12]), tuple(k[11])]
    torso_colour = tuple(int(c) for c in rng.integers(60, 200, 3))
    skin = tuple(int(c) for c in rng.integers(150, 256, 3))
    head_centre = (k[3] + k[4]) / 2
    head_box = [head_centre[0] - head_r, head_centre[1] - head_r * 1.15, head_centre[0] + head_r,
                head_centre[1] + head_r * 1.15]
    for target, fill in ((draw, None), (owner, owner_id), (mask, 255)):
        target.polygon(torso, fill=fill if fill is not None else torso_colour)
        target.line([tuple((k[5] + k[6]) / 2), tuple(head_centre)], fill=fill if fill is not None else skin,
                    width=width)
        target.ellipse(head_box, fill=fill if fill is not None else skin)
        for index, (a, b, side) in enumerate(LIMBS):
            colours = LEFT_COLOURS if side == 'L' else RIGHT_COLOURS
            colour = colours[index % 2] if fill is None else fill
            target.line([tuple(k[a]), tuple(k[b])], fill=colour, width=width)
        for j in range(5, 17):
            colour = (255, 255, 255) if fill is None else fill
            target.ellipse([k[j, 0] - joint_r, k[j, 1] - joint_r, k[j, 0] + joint_r, k[j, 1] + joint_r], fill=colour)
    face_r = max(1.0, 0.012 * height)
    for j, colour in ((0, (200, 0, 0)), (1, (120, 0, 0)), (2, (0, 0, 120)), (3, (240, 120, 120)),
                      (4, (120, 120, 240))):
        draw.ellipse([k[j, 0] - face_r, k[j, 1] - face_r, k[j, 0] + face_r, k[j, 1] + face_r], fill=colour)


def random_pose_image(rng: np.random.Generator, height: int, width: int, max_persons: int = 3,
                      occluder_prob: float = 0.3) -> Tuple[Image.Image, List[Dict]]:
    """One picture and its persons: dicts with `keypoints` [17, 3] (x, y, v), `bbox` [x, y, w, h], `area`."""
    image = Image.fromarray(textured_background(rng, height, width))
    draw = ImageDraw.Draw(image)
    owner_map = Image.new('L', (width, height), 0)
    owner = ImageDraw.Draw(owner_map)
    persons = []
    side = min(height, width)
    for person_id in range(1, int(rng.integers(1, max_persons + 1)) + 1):
        fig_height = rng.uniform(0.4, 0.95) * side
        local = figure_keypoints(rng, fig_height)  # [17, 2]
        local[:, 0] *= rng.uniform(0.8, 1.15)
        angle = np.deg2rad(rng.uniform(-25, 25))
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        centre = np.array([rng.uniform(0.1, 0.9) * width, rng.uniform(0.2, 0.7) * height])
        keypoints = local @ rotation.T + centre  # [17, 2] image pixels
        mask_image = Image.new('L', (width, height), 0)
        _draw_figure(draw, owner, ImageDraw.Draw(mask_image), keypoints, fig_height, person_id, rng)
        persons.append(dict(keypoints=keypoints, mask=np.asarray(mask_image) > 0, owner_id=person_id))
    if rng.random() < occluder_prob:  # an occluding shape on top of everything
        kind = SHAPE_KINDS[rng.integers(len(SHAPE_KINDS))]
        polygon = random_shape_polygon(rng, height, width, kind, min_size=0.15, max_size=0.35)
        draw.polygon(polygon, fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        owner.polygon(polygon, fill=255)
    owner_arr = np.asarray(owner_map)
    annotations = []
    for person in persons:
        ys, xs = np.nonzero(person['mask'])
        if xs.size == 0:
            continue
        x1, y1, x2, y2 = float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
        keypoints = np.zeros((17, 3))
        for j, (x, y) in enumerate(person['keypoints']):
            ix, iy = int(round(x)), int(round(y))
            if not (0 <= ix < width and 0 <= iy < height):
                continue  # outside the image: unlabelled
            keypoints[j] = [x, y, 2 if owner_arr[iy, ix] == person['owner_id'] else 1]
        if (keypoints[:, 2] > 0).sum() == 0:
            continue
        box = [x1, y1, x2 - x1, y2 - y1]
        annotations.append(dict(keypoints=keypoints, bbox=box, area=box[2] * box[3] * AREA_PER_BOX))
    return image, annotations


def _coco_json(images: List[Dict], annotations: List[Dict]) -> Dict:
    return dict(
        info=dict(description='mae_transfer synthetic stick figures (COCO person keypoints format)'),
        licenses=[], images=images, annotations=annotations,
        categories=[dict(id=1, name='person', supercategory='person', keypoints=list(COCO_KEYPOINT_NAMES),
                         skeleton=[[a + 1, b + 1] for a, b in COCO_SKELETON])])


def generate_pose_dataset(out_dir: Union[str, Path], num_train: int = 400, num_val: int = 60, seed: int = 0,
                          size_range: Tuple[int, int] = (128, 192), max_persons: int = 3) -> Dict[str, Path]:
    """Write the synthetic set (layout in the module docstring); return its annotation / detection files.

    The same arguments always write the same files (existing ones are overwritten).
    """
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    paths = {}
    ann_id = 1
    for split, count in (('train', num_train), ('val', num_val)):
        (out_dir / split).mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for index in range(count):
            height, width = (int(v) for v in rng.integers(size_range[0], size_range[1] + 1, size=2))
            image, persons = random_pose_image(rng, height, width, max_persons)
            file_name = f'pose_{index:05d}.png'
            image.save(out_dir / split / file_name)
            img_id = index + 1
            images.append(dict(id=img_id, file_name=file_name, width=width, height=height))
            for person in persons:
                annotations.append(dict(
                    id=ann_id, image_id=img_id, category_id=1, iscrowd=0, area=round(person['area'], 2),
                    bbox=[round(v, 2) for v in person['bbox']],
                    keypoints=[round(float(v), 2) if i % 3 < 2 else int(v)
                               for i, v in enumerate(person['keypoints'].reshape(-1))],
                    num_keypoints=int((person['keypoints'][:, 2] > 0).sum())))
                ann_id += 1
        (out_dir / 'annotations').mkdir(parents=True, exist_ok=True)
        path = out_dir / 'annotations' / f'person_keypoints_{split}.json'
        path.write_text(json.dumps(_coco_json(images, annotations)))
        paths[split] = path
        if split == 'val':
            paths['detections'] = _write_detections(out_dir / 'person_detection_results_val.json', images,
                                                    annotations, rng)
    return paths


def _write_detections(path: Path, images: List[Dict], annotations: List[Dict], rng: np.random.Generator) -> Path:
    """A mock person detector: every true box jittered (score 0.5-1) plus a low-scoring false box per image."""
    detections = []
    for ann in annotations:
        x, y, w, h = ann['bbox']
        jitter = rng.normal(0, 0.05, 4) * [w, h, w, h]
        detections.append(dict(image_id=ann['image_id'], category_id=1, score=float(rng.uniform(0.5, 1.0)),
                               bbox=[float(v) for v in np.array([x, y, w, h]) + jitter]))
    for img in images:
        w, h = rng.uniform(0.2, 0.5, 2) * [img['width'], img['height']]
        x, y = rng.uniform(0, img['width'] - w), rng.uniform(0, img['height'] - h)
        detections.append(dict(image_id=img['id'], category_id=1, score=float(rng.uniform(0.05, 0.4)),
                               bbox=[float(x), float(y), float(w), float(h)]))
    path.write_text(json.dumps(detections))
    return path


__all__ = ['figure_keypoints', 'generate_pose_dataset', 'random_pose_image']
