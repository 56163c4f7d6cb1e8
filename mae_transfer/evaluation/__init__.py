"""Metrics that mmdet / mmseg do not already provide. Importing this package registers them into METRICS."""

__all__ = []
