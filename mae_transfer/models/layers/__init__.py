"""ViT building blocks with the official MAE / timm parameter names: blocks, attention variants, pos-embed math."""
from .pos_embed import get_2d_sincos_pos_embed, grid_tuple, resize_pos_embed
from .vit import Attention, Block, ViTEncoder
from .window_attention import WindowRelPosAttention

__all__ = ['Attention', 'Block', 'ViTEncoder', 'WindowRelPosAttention', 'get_2d_sincos_pos_embed', 'grid_tuple',
           'resize_pos_embed']
