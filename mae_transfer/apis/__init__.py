"""Inference helpers: what a user calls from a notebook or a tool.

One module per task, each with `infer_images(cfg, checkpoint, image_paths, out_dir, ...)` for tools/infer.py:
`detect` (mmdet), `segment` (mmseg), `pose`, `classify`, plus `reconstruct` for MAE pictures. The names
below are the notebook-friendly entry points of each.
"""
from .classify import classify_images
from .classify import draw_prediction as draw_classification
from .detect import draw_prediction as draw_detections
from .detect import init_model as init_detector
from .detect import predict as detect_images
from .pose import draw_pose, estimate_pose, init_pose_model
from .reconstruct import load_images, reconstruct, reconstruction_grid
from .segment import draw_segmentation, init_segmentor, segment_images

__all__ = [
    'classify_images', 'detect_images', 'draw_classification', 'draw_detections', 'draw_pose',
    'draw_segmentation', 'estimate_pose', 'init_detector', 'init_pose_model', 'init_segmentor', 'load_images',
    'reconstruct', 'reconstruction_grid', 'segment_images'
]
