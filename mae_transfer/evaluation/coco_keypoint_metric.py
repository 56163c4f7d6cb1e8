"""COCO keypoint AP/AR with pycocotools' `COCOeval(iouType='keypoints')`, after the top-down protocol of
SimpleBaseline / ViTPose (mmpose's CocoMetric):

1. every predicted person gets the score `bbox_score x mean(keypoint scores above keypoint_score_thr)`;
2. per image, OKS-based NMS (`oks_nms`, threshold 0.9) removes duplicates from overlapping detector boxes;
3. the survivors are written in COCO results format and evaluated against the annotation file.

Predictions come from `TopdownPoseEstimator.predict` (`pred_keypoints`, `keypoint_scores` plus the crop's
metainfo); the ground truth is read from `ann_file`.
"""
import contextlib
import io
import json
import os.path as osp
import tempfile
from collections import OrderedDict, defaultdict
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ..registry import METRICS
from ..utils.annotation_checks import load_coco_quietly

COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89],
                       dtype=np.float64) / 10.0
STAT_NAMES = ('AP', 'AP .5', 'AP .75', 'AP (M)', 'AP (L)', 'AR', 'AR .5', 'AR .75', 'AR (M)', 'AR (L)')


def oks_iou(reference: np.ndarray, others: np.ndarray, area: float, other_areas: np.ndarray, sigmas: np.ndarray,
            vis_thr: Optional[float] = None) -> np.ndarray:
    """Object keypoint similarity of one person with each of several others.

    Args:
        reference: [K, 3] (x, y, score).
        others: [M, K, 3].
        area: the reference's area (its box's).
        other_areas: [M].
        sigmas: [K] per-keypoint falloff.
        vis_thr: only keypoints scoring above this in both persons count (all when None).

    Returns:
        [M] OKS values in [0, 1].
    """
    variances = (2 * sigmas) ** 2  # [K]
    dx = others[..., 0] - reference[None, :, 0]  # [M, K]
    dy = others[..., 1] - reference[None, :, 1]
    scale = (area + other_areas)[:, None] / 2 + np.spacing(1)  # [M, 1]
    e = (dx ** 2 + dy ** 2) / variances[None] / scale / 2  # [M, K]
    similarity = np.exp(-e)
    if vis_thr is None:
        return similarity.mean(axis=1)
    valid = (reference[None, :, 2] > vis_thr) & (others[..., 2] > vis_thr)  # [M, K]
    counts = valid.sum(axis=1)
    return np.where(counts > 0, (similarity * valid).sum(axis=1) / np.maximum(counts, 1), 0.0)


def oks_nms(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, thr: float = 0.9,
            sigmas: np.ndarray = COCO_SIGMAS, vis_thr: Optional[float] = None) -> List[int]:
    """Greedy NMS with OKS as the overlap: indices of the kept persons, best first.

    Args:
        keypoints: [N, K, 3] (x, y, score) of one image's persons.
        scores: [N] instance scores.
        areas: [N] person areas.
        thr: a person is dropped if its OKS with a kept, higher-scoring one exceeds this.
        sigmas: [K] OKS falloffs.
        vis_thr: see `oks_iou`.
    """
    order = np.argsort(-np.asarray(scores), kind='stable')
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        if rest.size == 0:
            break
        overlap = oks_iou(keypoints[i], keypoints[rest], areas[i], areas[rest], sigmas, vis_thr)
        order = rest[overlap <= thr]
    return keep


@METRICS.register_module()
class CocoKeypointMetric(BaseMetric):
    """COCO keypoint AP / AR (`coco/AP`, `coco/AP .5`, ..., `coco/AR (L)`).

    Args:
        ann_file: person_keypoints json with the ground truth.
        score_mode: 'bbox_keypoint' (bbox score x mean confident keypoint score), 'keypoint' or 'bbox'.
        keypoint_score_thr: keypoints scoring above this count in the instance score.
        nms_mode: 'oks_nms' or 'none'.
        nms_thr: OKS threshold of the NMS.
        outfile_prefix: where to keep the results json (`<prefix>.keypoints.json`); a temporary file otherwise.
        collect_device: 'cpu' or 'gpu' for gathering results across processes.
        prefix: metric name prefix ('coco').
    """

    default_prefix = 'coco'

    def __init__(self, ann_file: str, score_mode: str = 'bbox_keypoint', keypoint_score_thr: float = 0.2,
                 nms_mode: str = 'oks_nms', nms_thr: float = 0.9, outfile_prefix: Optional[str] = None,
                 collect_device: str = 'cpu', prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if score_mode not in ('bbox_keypoint', 'keypoint', 'bbox'):
            raise ValueError(f'unknown score_mode {score_mode!r}')
        if nms_mode not in ('oks_nms', 'none'):
            raise ValueError(f'unknown nms_mode {nms_mode!r}')
        self.ann_file = ann_file
        self.score_mode = score_mode
        self.keypoint_score_thr = keypoint_score_thr
        self.nms_mode = nms_mode
        self.nms_thr = nms_thr
        self.outfile_prefix = outfile_prefix
        self._coco: Optional[COCO] = None

    @property
    def coco(self) -> COCO:
        if self._coco is None:
            self._coco = load_coco_quietly(self.ann_file)
        return self._coco

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Keep what the evaluation needs from each predicted sample (dicts, as mmengine's Evaluator passes)."""
        for sample in data_samples:
            sample = sample if isinstance(sample, dict) else sample.to_dict()
            scale = np.asarray(sample.get('input_scale', (0.0, 0.0)), np.float64)
            self.results.append(dict(
                id=int(sample.get('id', -1)), img_id=int(sample['img_id']),
                category_id=int(sample.get('category_id', 1)),
                keypoints=np.asarray(sample['pred_keypoints'], np.float64).reshape(-1, 2),
                keypoint_scores=np.asarray(sample['keypoint_scores'], np.float64).reshape(-1),
                bbox_score=float(sample.get('bbox_score', 1.0)), area=float(np.prod(scale))))

    def instance_score(self, result: dict) -> float:
        if self.score_mode == 'bbox':
            return result['bbox_score']
        scores = result['keypoint_scores']
        confident = scores[scores > self.keypoint_score_thr]
        keypoint_score = float(confident.mean()) if confident.size else 0.0
        return keypoint_score * (result['bbox_score'] if self.score_mode == 'bbox_keypoint' else 1.0)

    def results_to_coco(self, results: List[dict]) -> List[dict]:
        """Rescore, deduplicate (distributed samplers pad with repeats), OKS-NMS per image -> COCO results."""
        by_image: Dict[int, Dict[int, dict]] = defaultdict(OrderedDict)
        for result in results:
            by_image[result['img_id']].setdefault(result['id'], result)
        coco_results = []
        for img_id, persons in by_image.items():
            persons = list(persons.values())
            keypoints = np.stack([np.concatenate([p['keypoints'], p['keypoint_scores'][:, None]], axis=1)
                                  for p in persons])  # [N, K, 3]
            scores = np.array([self.instance_score(p) for p in persons])
            keep = list(range(len(persons)))
            if self.nms_mode == 'oks_nms':
                sigmas = COCO_SIGMAS if keypoints.shape[1] == len(COCO_SIGMAS) else np.full(keypoints.shape[1], .05)
                keep = oks_nms(keypoints, scores, np.array([p['area'] for p in persons]), self.nms_thr, sigmas)
            for index in keep:
                coco_results.append(dict(image_id=img_id, category_id=persons[index]['category_id'],
                                         keypoints=keypoints[index].reshape(-1).round(3).tolist(),
                                         score=float(scores[index])))
        return coco_results

    def evaluate_coco_results(self, coco_results: List[dict]) -> Dict[str, float]:
        """COCOeval(iouType='keypoints') of results already in COCO format."""
        if not coco_results:
            print_log('CocoKeypointMetric: no predictions, every AP/AR is 0', logger='current')
            return {name: 0.0 for name in STAT_NAMES}
        with tempfile.TemporaryDirectory() as tmp:
            path = f'{self.outfile_prefix}.keypoints.json' if self.outfile_prefix else osp.join(tmp, 'results.json')
            with open(path, 'w') as f:
                json.dump(coco_results, f)
            output = io.StringIO()
            with contextlib.redirect_stdout(output):
                detections = self.coco.loadRes(path)
                evaluator = COCOeval(self.coco, detections, 'keypoints')
                evaluator.params.useSegm = None
                evaluator.evaluate()
                evaluator.accumulate()
                evaluator.summarize()
        print_log('\n' + output.getvalue().strip(), logger='current')
        return {name: float(value) for name, value in zip(STAT_NAMES, evaluator.stats)}

    def compute_metrics(self, results: list) -> Dict[str, float]:
        return self.evaluate_coco_results(self.results_to_coco(results))


__all__ = ['COCO_SIGMAS', 'CocoKeypointMetric', 'oks_iou', 'oks_nms']
