"""Top-down pose transforms (mmcv `BaseTransform`s registered in our TRANSFORMS), after mmpose / ViTPose.

One data item is one person: `img` (H, W, 3 uint8, BGR as mmcv loads it), `bbox` [4] (x1, y1, x2, y2),
`keypoints` [K, 2] and `keypoints_visible` [K] in image pixels (visible = labelled: COCO v > 0). The pipeline::

    mmcv.LoadImageFromFile -> GetBBoxCenterScale (padding 1.25) -> PoseRandomFlip -> PoseHalfBody
    -> PoseRandomBBoxTransform (shift / scale / rotation) -> TopdownAffine (input size, UDP or classic)
    -> GenerateHeatmapTarget (codec) -> PackPoseInputs

adds `bbox_center`, `bbox_scale` (w, h), `bbox_rotation`, then `input_keypoints` [K, 2] in crop pixels,
`heatmaps` [K, h, w] and `keypoint_weights` [K]. `PackPoseInputs` returns `inputs` (uint8 [3, H, W] tensor)
and a `BaseDataElement` data sample; mmengine's default `pseudo_collate` batches them.
"""
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.structures import BaseDataElement

from ..codecs import (COCO_FLIP_INDICES, COCO_LOWER_BODY_IDS, COCO_UPPER_BODY_IDS, apply_affine, box_to_center_scale,
                      fix_aspect_ratio, flip_keypoints, warp_matrix)
from ..registry import TASK_UTILS, TRANSFORMS
from ..utils.builder import build_module


def truncated_normal(rng: np.random.Generator, size: int) -> np.ndarray:
    """Standard normal samples truncated to [-1, 1] (resampled, not clipped)."""
    out = rng.standard_normal(size)
    bad = np.abs(out) > 1
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 1
    return out


class _RandomTransform(BaseTransform):
    """A random transform drawing from a generator seeded by numpy's global state per call."""

    def _rng(self) -> np.random.Generator:
        # np.random's global state is seeded (per worker and rank) by mmengine's `randomness` / worker_init_fn
        return np.random.default_rng(np.random.randint(0, 2 ** 31 - 1))


@TRANSFORMS.register_module()
class GetBBoxCenterScale(BaseTransform):
    """`bbox` -> `bbox_center` [2] and `bbox_scale` [2] = box size x `padding`."""

    def __init__(self, padding: float = 1.25) -> None:
        self.padding = padding

    def transform(self, results: Dict) -> Dict:
        center, scale = box_to_center_scale(results['bbox'], self.padding)
        results['bbox_center'], results['bbox_scale'] = center, scale
        return results


@TRANSFORMS.register_module()
class PoseRandomFlip(_RandomTransform):
    """Horizontal flip of image, box and keypoints with left/right keypoints swapped (`flip_indices`).

    Args:
        prob: flip probability (1.0 always flips: used by tests and flip test).
    """

    def __init__(self, prob: float = 0.5) -> None:
        self.prob = prob

    def transform(self, results: Dict) -> Dict:
        if self._rng().random() >= self.prob:
            results['flip'] = results.get('flip', False)
            return results
        width = results['img'].shape[1]
        results['img'] = np.ascontiguousarray(results['img'][:, ::-1])
        if 'keypoints' in results:
            results['keypoints'], results['keypoints_visible'] = flip_keypoints(
                results['keypoints'], results['keypoints_visible'], width,
                results.get('flip_indices', COCO_FLIP_INDICES))
        if 'bbox' in results:
            x1, y1, x2, y2 = results['bbox']
            results['bbox'] = np.array([width - 1 - x2, y1, width - 1 - x1, y2], np.float32)
        if 'bbox_center' in results:
            results['bbox_center'] = np.array([width - 1 - results['bbox_center'][0], results['bbox_center'][1]],
                                              np.float32)
        results['flip'] = not results.get('flip', False)
        return results


@TRANSFORMS.register_module()
class PoseHalfBody(_RandomTransform):
    """Replace the box by one around the visible upper- or lower-body keypoints (ViTPose: prob 0.3).

    mmpose 1.x's `HalfBodyTransform` rule (ViTPose's `TopDownHalfBodyTransform(num_joints_half_body=8)` is the
    same threshold: more than 8): persons with at least `min_total_keypoints` labelled keypoints; the upper
    body with probability `upper_prioritized_prob` when both halves qualify, else the half that does.

    Args:
        min_total_keypoints: applies only to persons with at least this many labelled keypoints.
        min_upper_keypoints: labelled upper-body keypoints needed to pick the upper body.
        min_lower_keypoints: labelled lower-body keypoints needed to pick the lower body.
        padding: scale factor of the half-body box.
        prob: probability of applying it.
        upper_prioritized_prob: probability of the upper body when both halves qualify (mmpose: 0.7).
    """

    def __init__(self, min_total_keypoints: int = 9, min_upper_keypoints: int = 2, min_lower_keypoints: int = 3,
                 padding: float = 1.5, prob: float = 0.3,
                 upper_prioritized_prob: float = 0.7) -> None:
        self.min_total_keypoints = min_total_keypoints
        self.min_upper_keypoints = min_upper_keypoints
        self.min_lower_keypoints = min_lower_keypoints
        self.padding = padding
        self.prob = prob
        self.upper_prioritized_prob = upper_prioritized_prob

    def half_body_box(self, keypoints: np.ndarray, visible: np.ndarray, upper_ids: Sequence[int],
                      lower_ids: Sequence[int], rng: np.random.Generator) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        upper = [k for k in upper_ids if visible[k] > 0]
        lower = [k for k in lower_ids if visible[k] > 0]
        upper_ok, lower_ok = len(upper) >= self.min_upper_keypoints, len(lower) >= self.min_lower_keypoints
        if not (upper_ok or lower_ok):
            return None
        prefer_upper = rng.random() < self.upper_prioritized_prob
        chosen = upper if upper_ok and (prefer_upper or not lower_ok) else lower
        if len(chosen) < 2:
            return None
        points = keypoints[chosen]  # [k, 2]
        center = points.mean(axis=0).astype(np.float32)
        size = (points.max(axis=0) - points.min(axis=0)).astype(np.float32)
        if size.min() <= 0:
            return None
        return center, size * self.padding

    def transform(self, results: Dict) -> Dict:
        visible = results['keypoints_visible']
        rng = self._rng()
        if (visible > 0).sum() < self.min_total_keypoints or rng.random() >= self.prob:
            return results
        box = self.half_body_box(results['keypoints'], visible, results.get('upper_body_ids', COCO_UPPER_BODY_IDS),
                                 results.get('lower_body_ids', COCO_LOWER_BODY_IDS), rng)
        if box is not None:
            results['bbox_center'], results['bbox_scale'] = box
        return results


@TRANSFORMS.register_module()
class PoseRandomBBoxTransform(_RandomTransform):
    """Random shift, scale and rotation of the crop (mmpose's RandomBBoxTransform defaults, used by ViTPose).

    Args:
        shift_factor: centre shift, a fraction of the box size (truncated normal).
        shift_prob: probability of shifting.
        scale_factor: (min, max) scale multiplier (truncated normal around the middle).
        scale_prob: probability of rescaling.
        rotate_factor: rotation in degrees at one standard deviation (truncated at 1).
        rotate_prob: probability of rotating.
    """

    def __init__(self, shift_factor: float = 0.16, shift_prob: float = 0.3,
                 scale_factor: Tuple[float, float] = (0.5, 1.5), scale_prob: float = 1.0,
                 rotate_factor: float = 80.0, rotate_prob: float = 0.6) -> None:
        self.shift_factor = shift_factor
        self.shift_prob = shift_prob
        self.scale_factor = scale_factor
        self.scale_prob = scale_prob
        self.rotate_factor = rotate_factor
        self.rotate_prob = rotate_prob

    def transform(self, results: Dict) -> Dict:
        rng = self._rng()
        scale = results['bbox_scale'].astype(np.float32)
        center = results['bbox_center'].astype(np.float32)
        if rng.random() < self.shift_prob:
            center = center + truncated_normal(rng, 2).astype(np.float32) * self.shift_factor * scale
        if rng.random() < self.scale_prob:
            low, high = self.scale_factor
            scale = scale * float(truncated_normal(rng, 1)[0] * (high - low) / 2 + (high + low) / 2)
        rotation = 0.0
        if rng.random() < self.rotate_prob:
            rotation = float(truncated_normal(rng, 1)[0] * self.rotate_factor)
        results['bbox_center'], results['bbox_scale'], results['bbox_rotation'] = center, scale, rotation
        return results


@TRANSFORMS.register_module()
class TopdownAffine(BaseTransform):
    """Warp the person crop to the network input: aspect-ratio fix, then one affine (rotation included).

    Args:
        input_size: (W, H) of the input; the crop's aspect ratio is made W / H.
        use_udp: UDP pixel convention (pair with `UDPHeatmap`); classic otherwise (`MSRAHeatmap`).
    """

    def __init__(self, input_size: Sequence[int] = (192, 256), use_udp: bool = False) -> None:
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.use_udp = use_udp

    def transform(self, results: Dict) -> Dict:
        width, height = self.input_size
        scale = fix_aspect_ratio(results['bbox_scale'], width / height)
        rotation = float(results.get('bbox_rotation', 0.0))
        matrix = warp_matrix(results['bbox_center'], scale, rotation, self.input_size, self.use_udp)
        results['img'] = cv2.warpAffine(results['img'], matrix, (width, height), flags=cv2.INTER_LINEAR)
        if 'keypoints' in results:
            results['input_keypoints'] = apply_affine(results['keypoints'], matrix)  # [K, 2] crop pixels
        results['input_size'] = np.array(self.input_size, np.float32)
        results['input_center'] = np.asarray(results['bbox_center'], np.float32)
        results['input_scale'] = scale
        results['img_shape'] = (height, width)
        return results


@TRANSFORMS.register_module()
class GenerateHeatmapTarget(BaseTransform):
    """`input_keypoints` -> `heatmaps` [K, h, w] and `keypoint_weights` [K] with the codec `encoder`.

    Args:
        encoder: codec config, e.g. dict(type='UDPHeatmap', input_size=(192, 256), heatmap_size=(48, 64), sigma=2):
            any codec registered in TASK_UTILS.
    """

    def __init__(self, encoder: dict) -> None:
        self.encoder_cfg = dict(encoder)
        self.encoder = build_module(TASK_UTILS, self.encoder_cfg)

    def transform(self, results: Dict) -> Dict:
        heatmaps, weights = self.encoder.encode(results['input_keypoints'], results['keypoints_visible'])
        results['heatmaps'], results['keypoint_weights'] = heatmaps, weights
        return results


DEFAULT_META_KEYS = ('id', 'img_id', 'img_path', 'ori_shape', 'img_shape', 'input_size', 'input_center',
                     'input_scale', 'bbox', 'bbox_score', 'category_id', 'flip', 'flip_indices')


@TRANSFORMS.register_module()
class PackPoseInputs(BaseTransform):
    """`inputs`: uint8 image tensor [3, H, W]; `data_samples`: BaseDataElement with the meta keys as metainfo
    and, when present, `heatmaps` [K, h, w] / `keypoint_weights` [K] tensors and `gt_keypoints` [K, 2]."""

    def __init__(self, meta_keys: Sequence[str] = DEFAULT_META_KEYS) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: Dict) -> Dict:
        image = results['img']
        if image.ndim == 2:
            image = image[..., None].repeat(3, axis=2)
        inputs = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))  # [3, H, W]
        sample = BaseDataElement(metainfo={key: results[key] for key in self.meta_keys if key in results})
        if 'heatmaps' in results:
            sample.heatmaps = torch.from_numpy(results['heatmaps'])
            sample.keypoint_weights = torch.from_numpy(results['keypoint_weights'])
        if 'keypoints' in results:
            sample.gt_keypoints = torch.from_numpy(np.asarray(results['keypoints'], np.float32))
            sample.gt_keypoints_visible = torch.from_numpy(np.asarray(results['keypoints_visible'], np.float32))
        return dict(inputs=inputs, data_samples=sample)


__all__ = ['GenerateHeatmapTarget', 'GetBBoxCenterScale', 'PackPoseInputs', 'PoseHalfBody', 'PoseRandomBBoxTransform',
           'PoseRandomFlip', 'TopdownAffine', 'truncated_normal']
