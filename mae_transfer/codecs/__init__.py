"""Keypoint heatmap codecs, top-down crop geometry and COCO keypoint metadata (plain numpy).

Datasets (target generation), models (decoding), metrics and drawing all use them, so they sit below each.
"""
from .coco_keypoints import (COCO_FLIP_INDICES, COCO_KEYPOINT_NAMES, COCO_LOWER_BODY_IDS, COCO_SIGMAS,
                             COCO_SKELETON, COCO_UPPER_BODY_IDS)
from .geometry import (apply_affine, box_to_center_scale, crop_to_image, fix_aspect_ratio, flip_keypoints,
                       invert_affine, warp_matrix)
from .heatmap import MSRAHeatmap, UDPHeatmap

__all__ = ['COCO_FLIP_INDICES', 'COCO_KEYPOINT_NAMES', 'COCO_LOWER_BODY_IDS', 'COCO_SIGMAS', 'COCO_SKELETON',
           'COCO_UPPER_BODY_IDS', 'MSRAHeatmap', 'UDPHeatmap', 'apply_affine', 'box_to_center_scale',
           'crop_to_image', 'fix_aspect_ratio', 'flip_keypoints', 'invert_affine', 'warp_matrix']
