"""Registered necks."""
from .simple_fpn import LayerNorm2d, SimpleFPN

__all__ = ['LayerNorm2d', 'SimpleFPN']
