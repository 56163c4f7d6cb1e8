"""Model code. Importing this package registers every model class into mae_transfer.registry.MODELS."""
from .mae import (CheckpointLoadResult, MaskedAutoencoderViT, load_mae_checkpoint, mae_vit_base_patch16,
                  mae_vit_huge_patch14, mae_vit_large_patch16, mae_vit_small_patch16, mae_vit_tiny_patch16,
                  patchify, unpatchify)
from .mae_pretrainer import MAE_ARCHS, MAEPretrainer
from .patch_stem import PatchStem
from .pos_embed import get_2d_sincos_pos_embed, resize_pos_embed
from .vit import Attention, Block, ViTEncoder

__all__ = [
    'MAE_ARCHS', 'MAEPretrainer', 'PatchStem', 'Attention', 'Block', 'ViTEncoder', 'MaskedAutoencoderViT',
    'CheckpointLoadResult',
    'load_mae_checkpoint', 'patchify', 'unpatchify', 'get_2d_sincos_pos_embed', 'resize_pos_embed',
    'mae_vit_tiny_patch16', 'mae_vit_small_patch16', 'mae_vit_base_patch16', 'mae_vit_large_patch16',
    'mae_vit_huge_patch14'
]
