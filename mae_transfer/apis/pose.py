"""Pose inference: run a trained top-down model on images (with person boxes, or the whole image) and draw it.

    from mae_transfer.apis.pose import init_pose_model, estimate_pose, draw_pose
    model = init_pose_model(cfg, 'work_dirs/pose/iter_300.pth')
    persons = estimate_pose(model, image_bgr, boxes_xywh)     # list of dicts: keypoints [K, 2], keypoint_scores [K]
    picture = draw_pose(image_bgr, persons, score_thr=0.3)

`infer_images` is what `tools/infer.py` calls for pose configs. Boxes come from a JSON file: COCO results
format (a detector's output; `image_id` matched to the file name's number, e.g. 000000000785.jpg -> 785) or
`{file name: [[x, y, w, h], ...]}`; images without boxes are treated as one person filling the image.
"""
import json
import os.path as osp
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import DefaultScope
from mmengine.runner import load_checkpoint

from ..codecs.coco_keypoints import COCO_FLIP_INDICES, COCO_SKELETON

LEFT, RIGHT, CENTRE = (0, 140, 255), (255, 120, 0), (60, 200, 60)  # BGR limb colours


def init_pose_model(cfg: Union[str, Config], checkpoint: Optional[str] = None, device: str = 'cpu'):
    """Build the config's TopdownPoseEstimator, load `checkpoint` (whole model), eval mode on `device`."""
    from ..utils.configs import build_model

    cfg = Config.fromfile(cfg) if isinstance(cfg, str) else cfg
    cfg = cfg.copy()
    cfg.model.backbone.init_cfg = None  # the trained checkpoint holds every weight
    model = build_model(cfg)
    if checkpoint:
        load_checkpoint(model, checkpoint, map_location='cpu', logger='silent')
    model.cfg = cfg
    return model.to(device).eval()


def _test_pipeline(cfg: Config) -> Compose:
    """The config's test pipeline without its file loading step (images come as arrays)."""
    steps = [step for step in cfg.test_dataloader.dataset.pipeline
             if not str(step['type']).split('.')[-1].startswith('LoadImage')]
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mae_transfer')):
        return Compose(steps)


@torch.no_grad()
def estimate_pose(model, image: np.ndarray, boxes: Optional[np.ndarray] = None,
                  box_scores: Optional[Sequence[float]] = None, batch_size: int = 16) -> List[Dict]:
    """Keypoints of each person box in a BGR image.

    Args:
        model: from `init_pose_model` (needs `model.cfg`).
        image: [H, W, 3] uint8 BGR.
        boxes: [N, 4] person boxes (x, y, w, h); the whole image when None or empty.
        box_scores: [N] box scores (1 when left out).
        batch_size: crops per forward pass.

    Returns:
        one dict per box: keypoints [K, 2] (image pixels), keypoint_scores [K], bbox [4] (x1, y1, x2, y2),
        bbox_score, score (bbox score x mean keypoint score).
    """
    height, width = image.shape[:2]
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4) if boxes is not None else np.zeros((0, 4), np.float32)
    if len(boxes) == 0:
        boxes, box_scores = np.array([[0, 0, width, height]], np.float32), [1.0]
    box_scores = list(box_scores) if box_scores is not None else [1.0] * len(boxes)
    pipeline = _test_pipeline(model.cfg)
    items = []
    for index, ((x, y, w, h), score) in enumerate(zip(boxes, box_scores)):
        items.append(pipeline(dict(img=image.copy(), img_shape=(height, width), ori_shape=(height, width),
                                   bbox=np.array([x, y, x + w, y + h], np.float32), bbox_score=float(score),
                                   id=index, img_id=0, category_id=1, flip_indices=COCO_FLIP_INDICES)))
    persons = []
    for start in range(0, len(items), batch_size):
        for sample in model.test_step(pseudo_collate(items[start:start + batch_size])):
            scores = np.asarray(sample.keypoint_scores)
            persons.append(dict(keypoints=np.asarray(sample.pred_keypoints), keypoint_scores=scores,
                                bbox=np.asarray(sample.bbox), bbox_score=float(sample.bbox_score),
                                score=float(sample.bbox_score) * float(scores.mean())))
    return persons


def _side(joint: int, flip_indices: Sequence[int]) -> str:
    """'C' for unpaired joints, else 'L' / 'R' (COCO order: left joints have odd indices)."""
    if flip_indices[joint] == joint:
        return 'C'
    return 'L' if joint % 2 == 1 else 'R'


def _confidence_colour(score: float) -> Tuple[int, int, int]:
    """Red (0) -> yellow -> green (1), BGR."""
    s = float(np.clip(score, 0, 1))
    return (0, int(255 * min(1, 2 * s)), int(255 * min(1, 2 * (1 - s))))


def draw_pose(image: np.ndarray, persons: Sequence[Dict], score_thr: float = 0.3,
              skeleton: Sequence[Tuple[int, int]] = COCO_SKELETON, flip_indices: Sequence[int] = COCO_FLIP_INDICES,
              show_scores: bool = True) -> np.ndarray:
    """Skeletons on a copy of a BGR image: limbs (left orange, right blue) between keypoints scoring >= score_thr,
    keypoints coloured by confidence (red 0 -> green 1) with the value written next to them, boxes with the
    person score."""
    canvas = image.copy()
    side = max(image.shape[:2])
    thickness = max(1, side // 250)
    radius = max(2, side // 150)
    font = max(0.3, side / 1600)
    for person in persons:
        keypoints, scores = person['keypoints'], person['keypoint_scores']
        if 'bbox' in person:
            x1, y1, x2, y2 = (int(round(v)) for v in person['bbox'])
            cv2.rectangle(canvas, (x1, y1), (x2, y2), (200, 200, 200), 1)
            cv2.putText(canvas, f"{person.get('score', 0):.2f}", (x1 + 2, y1 + int(14 * font / 0.4)),
                        cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), 1, cv2.LINE_AA)
        for a, b in skeleton:
            if scores[a] < score_thr or scores[b] < score_thr:
                continue
            sides = {_side(a, flip_indices), _side(b, flip_indices)}
            colour = LEFT if sides == {'L'} else RIGHT if sides == {'R'} else CENTRE
            cv2.line(canvas, tuple(int(round(v)) for v in keypoints[a]), tuple(int(round(v)) for v in keypoints[b]),
                     colour, thickness, cv2.LINE_AA)
        for (x, y), score in zip(keypoints, scores):
            if score < score_thr:
                continue
            centre = (int(round(x)), int(round(y)))
            cv2.circle(canvas, centre, radius, _confidence_colour(score), -1, cv2.LINE_AA)
            if show_scores:
                cv2.putText(canvas, f'{score:.2f}', (centre[0] + radius + 1, centre[1]), cv2.FONT_HERSHEY_SIMPLEX,
                            font * 0.8, _confidence_colour(score), 1, cv2.LINE_AA)
    return canvas


def load_boxes(boxes: Union[str, Dict, List, None], image_paths: Sequence[str],
               bbox_thr: float = 0.3) -> Dict[str, Tuple[np.ndarray, List[float]]]:
    """Person boxes per image path: {path: (boxes [N, 4] xywh, scores [N])} from a file or loaded JSON.

    COCO results (a list of dicts with image_id, bbox, score, category_id) are matched by the number in the file
    name and filtered by category 1 and `bbox_thr`; a mapping {file name or path: [[x, y, w, h], ...]} is taken
    as is (score 1).
    """
    if boxes is None:
        return {}
    if isinstance(boxes, (str, Path)):
        with open(boxes) as f:
            boxes = json.load(f)
    out: Dict[str, Tuple[np.ndarray, List[float]]] = {}
    for path in image_paths:
        name, stem = osp.basename(path), osp.splitext(osp.basename(path))[0]
        if isinstance(boxes, dict):
            entry = boxes.get(path, boxes.get(name, boxes.get(stem)))
            if entry is not None:
                out[path] = (np.asarray(entry, np.float32).reshape(-1, 4), [1.0] * len(entry))
            continue
        image_id = int(stem) if stem.isdigit() else None
        chosen = [det for det in boxes if det.get('image_id') in (image_id, stem, name)
                  and det.get('category_id', 1) == 1 and det.get('score', 1.0) >= bbox_thr]
        out[path] = (np.asarray([det['bbox'] for det in chosen], np.float32).reshape(-1, 4),
                     [float(det.get('score', 1.0)) for det in chosen])
    return out


def infer_images(cfg: Config, checkpoint: str, image_paths: Sequence[str], out_dir: str, device: str = 'cpu',
                 score_thr: Optional[float] = None, boxes: Union[str, Dict, List, None] = None,
                 bbox_thr: float = 0.3, nms_thr: float = 0.9) -> List[Path]:
    """Draw the predicted skeletons of each image into `out_dir` (same stem, .png); return the written paths.

    Args:
        cfg: the pose config the checkpoint was trained with.
        checkpoint: trained weights.
        image_paths: image files.
        out_dir: output folder (created).
        device: 'cpu' or 'cuda[:N]'.
        score_thr: keypoints below this confidence are not drawn (default 0.3).
        boxes: person boxes (see `load_boxes`); the whole image per picture when None.
        bbox_thr: detector boxes scoring below this are ignored.
        nms_thr: OKS NMS threshold over each image's persons.
    """
    from ..evaluation.coco_keypoint_metric import oks_nms

    score_thr = 0.3 if score_thr is None else score_thr
    model = init_pose_model(cfg, checkpoint, device)
    box_map = load_boxes(boxes, image_paths, bbox_thr)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in image_paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f'cannot read image {path}')
        person_boxes, person_scores = box_map.get(path, (None, None))
        persons = estimate_pose(model, image, person_boxes, person_scores)
        if len(persons) > 1:
            keypoints = np.stack([np.concatenate([p['keypoints'], p['keypoint_scores'][:, None]], 1) for p in persons])
            areas = np.array([(p['bbox'][2] - p['bbox'][0]) * (p['bbox'][3] - p['bbox'][1]) for p in persons])
            persons = [persons[i] for i in oks_nms(keypoints, np.array([p['score'] for p in persons]), areas,
                                                   nms_thr)]
        target = out_dir / f'{Path(path).stem}.png'
        cv2.imwrite(str(target), draw_pose(image, persons, score_thr))
        written.append(target)
    return written


__all__ = ['draw_pose', 'estimate_pose', 'infer_images', 'init_pose_model', 'load_boxes']
