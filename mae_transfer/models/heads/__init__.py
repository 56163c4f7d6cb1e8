"""Registered heads and their losses."""
from .heatmap_head import HeatmapHead, KeypointMSELoss, SimpleHeatmapHead

__all__ = ['HeatmapHead', 'KeypointMSELoss', 'SimpleHeatmapHead']
