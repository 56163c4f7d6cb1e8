"""Registered backbones: the MAE encoder as an OpenMMLab backbone."""
from .mae_vit import MAEViT

__all__ = ['MAEViT']
