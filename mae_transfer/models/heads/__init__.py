"""Registered heads and their losses."""
from .heatmap_head import HEADS, HeatmapHead, KeypointMSELoss, SimpleHeatmapHead, build_head

__all__ = ['HEADS', 'HeatmapHead', 'KeypointMSELoss', 'SimpleHeatmapHead', 'build_head']
