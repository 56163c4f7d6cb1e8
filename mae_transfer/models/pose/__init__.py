"""Top-down heatmap pose estimation on the MAE ViT (ViTPose)."""
from .estimator import TopdownPoseEstimator

__all__ = ['TopdownPoseEstimator']
