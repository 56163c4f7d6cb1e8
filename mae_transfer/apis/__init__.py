"""Inference helpers: what a user calls from a notebook or a tool."""
from .reconstruct import load_images, reconstruct, reconstruction_grid

__all__ = ['load_images', 'reconstruct', 'reconstruction_grid']
