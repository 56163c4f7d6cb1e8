"""Top-down heatmap pose estimation on the MAE ViT (ViTPose): codecs, heads, the estimator, shared geometry."""
from .codecs import CODECS, MSRAHeatmap, UDPHeatmap, build_codec
from .estimator import TopdownPoseEstimator
from .geometry import (COCO_FLIP_INDICES, COCO_KEYPOINT_NAMES, COCO_SIGMAS, COCO_SKELETON, crop_to_image,
                       flip_keypoints, warp_matrix)
from .heads import HEADS, HeatmapHead, KeypointMSELoss, SimpleHeatmapHead, build_head

__all__ = [
    'CODECS', 'COCO_FLIP_INDICES', 'COCO_KEYPOINT_NAMES', 'COCO_SIGMAS', 'COCO_SKELETON', 'HEADS', 'HeatmapHead',
    'KeypointMSELoss', 'MSRAHeatmap', 'SimpleHeatmapHead', 'TopdownPoseEstimator', 'UDPHeatmap', 'build_codec',
    'build_head', 'crop_to_image', 'flip_keypoints', 'warp_matrix'
]
