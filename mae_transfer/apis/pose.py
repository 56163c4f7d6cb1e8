"""Pose inference: run a trained top-down model on images (with person boxes, or the whole image).

    from mae_transfer.apis import init_model, inference
    from mae_transfer.visualization import draw_pose
    model = init_model(cfg, 'work_dirs/pose/iter_300.pth')
    persons, = inference(model, [image_bgr], boxes=[boxes_xywh])  # per image: dicts with keypoints [K, 2], ...
    picture = draw_pose(image_bgr, persons, score_thr=0.3)

`infer_images` is what `tools/infer.py` calls for pose configs. Boxes come from a JSON file: COCO results
format (a detector's output; `image_id` matched to the file name's number, e.g. 000000000785.jpg -> 785) or
`{file name: [[x, y, w, h], ...]}`; images without boxes are treated as one person filling the image.
"""
import json
import os.path as osp
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.registry import DefaultScope

from ..codecs.coco_keypoints import COCO_FLIP_INDICES
from ..utils.images import read_image
from ..visualization import draw_pose

ImageLike = Union[str, Path, np.ndarray]
Boxes = Optional[np.ndarray]


def init_model(config: Union[str, Path, Config], checkpoint: Optional[str] = None, device: str = 'cpu',
               allow_partial: bool = False):
    """Build the config's TopdownPoseEstimator, load `checkpoint` (the whole model: ours, or a ViTPose release,
    through `mae_transfer.checkpoint.load_weights`), eval mode on `device`; `allow_partial` goes on when the
    checkpoint leaves a part of the model (the head) at its initialisation."""
    from ..checkpoint import load_weights
    from ..utils.configs import build_model

    cfg = config.copy() if isinstance(config, Config) else Config.fromfile(str(config))
    cfg.model.backbone.init_cfg = None  # the trained checkpoint holds every weight
    model = build_model(cfg)
    if checkpoint:
        load_weights(model, checkpoint, complete=not allow_partial)
    model.cfg = cfg
    return model.to(device).eval()


def _test_pipeline(cfg: Config) -> Compose:
    """The config's test pipeline without its file loading step (images come as arrays)."""
    steps = [step for step in cfg.test_dataloader.dataset.pipeline
             if not str(step['type']).split('.')[-1].startswith('LoadImage')]
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mae_transfer')):
        return Compose(steps)


def inference(model, images: Sequence[ImageLike], boxes: Optional[Sequence[Boxes]] = None,
              box_scores: Optional[Sequence[Optional[Sequence[float]]]] = None,
              batch_size: int = 16) -> List[List[Dict]]:
    """Keypoints of each person in each image.

    Args:
        model: from `init_model` (needs `model.cfg`).
        images: image files, or BGR uint8 arrays [H, W, 3] (mmcv's convention).
        boxes: one entry per image: [N, 4] person boxes (x, y, w, h), or None for the whole image
            (`load_boxes` reads them from a detector's results); the whole image everywhere when left out.
        box_scores: one entry per image: [N] box scores (1 when left out).
        batch_size: crops per forward pass.

    Returns:
        per image, one dict per box (see `_estimate`).
    """
    boxes = [None] * len(images) if boxes is None else list(boxes)
    box_scores = [None] * len(images) if box_scores is None else list(box_scores)
    if not len(boxes) == len(box_scores) == len(images):
        raise ValueError(f'{len(images)} images need one entry each in boxes ({len(boxes)}) and box_scores '
                         f'({len(box_scores)})')
    results = []
    for image, image_boxes, scores in zip(images, boxes, box_scores):
        if not isinstance(image, np.ndarray):
            image = read_image(image, channel_order='bgr')  # UnreadableImageError names a bad file
        results.append(_estimate(model, image, image_boxes, scores, batch_size))
    return results


@torch.no_grad()
def _estimate(model, image: np.ndarray, boxes: Optional[np.ndarray] = None,
              box_scores: Optional[Sequence[float]] = None, batch_size: int = 16) -> List[Dict]:
    """Keypoints of each person box in a BGR image.

    Args:
        model: from `init_model` (needs `model.cfg`).
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


def estimate(model, image: np.ndarray, boxes: Boxes = None, box_scores: Optional[Sequence[float]] = None,
             nms_thr: float = 0.9) -> List[Dict]:
    """The persons of one BGR image, as `inference` gives them, after OKS non-maximum suppression (a detector's
    overlapping boxes of one person give one skeleton).

    Args:
        model: from `init_model`.
        image: BGR uint8 [H, W, 3].
        boxes: [N, 4] person boxes (x, y, w, h); the whole image when None or empty.
        box_scores: [N] box scores (1 when left out).
        nms_thr: OKS above which the lower-scoring person is dropped.
    """
    from ..evaluation.coco_keypoint_metric import oks_nms

    persons = _estimate(model, image, boxes, box_scores)
    if len(persons) > 1:
        keypoints = np.stack([np.concatenate([p['keypoints'], p['keypoint_scores'][:, None]], 1) for p in persons])
        areas = np.array([(p['bbox'][2] - p['bbox'][0]) * (p['bbox'][3] - p['bbox'][1]) for p in persons])
        persons = [persons[i] for i in oks_nms(keypoints, np.array([p['score'] for p in persons]), areas, nms_thr)]
    return persons


def render(model, image: np.ndarray, persons: Sequence[Dict], score_thr: Optional[float] = None,
           **options) -> np.ndarray:
    """Skeletons drawn on a copy of a BGR image [H, W, 3]; keypoints below `score_thr` (default 0.3) are not."""
    return draw_pose(image, persons, 0.3 if score_thr is None else score_thr)


def to_json(model, persons: Sequence[Dict]) -> Dict:
    """Per person: keypoints [[x, y, score], ...] in image pixels, box (x1, y1, x2, y2), box score and score."""
    return dict(persons=[dict(keypoints=np.concatenate([p['keypoints'], p['keypoint_scores'][:, None]], 1),
                              bbox=p['bbox'], bbox_score=p['bbox_score'], score=p['score']) for p in persons])


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
    from .annotate import write_pictures

    model = init_model(cfg, checkpoint, device)
    return write_pictures(model, image_paths, out_dir, score_thr=score_thr,
                          boxes=load_boxes(boxes, image_paths, bbox_thr), nms_thr=nms_thr)


PICTURE_SUFFIX = '.png'
__all__ = ['PICTURE_SUFFIX', 'estimate', 'infer_images', 'inference', 'init_model', 'load_boxes', 'render', 'to_json']
