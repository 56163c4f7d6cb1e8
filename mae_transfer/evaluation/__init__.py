"""Metrics that mmdet / mmseg do not already provide. Importing this package registers them into METRICS."""
from .accuracy import Accuracy, topk_accuracy
from .coco_keypoint_metric import CocoKeypointMetric, oks_nms

__all__ = ['Accuracy', 'CocoKeypointMetric', 'oks_nms', 'topk_accuracy']
