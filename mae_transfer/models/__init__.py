"""Model code. Importing this package registers every model class into mae_transfer.registry.MODELS."""
from .backbone import ARCH_SETTINGS, MAEViT
from .classifier import ViTClassifier
from .mae import (CheckpointLoadResult, MaskedAutoencoderViT, load_mae_checkpoint, mae_vit_base_patch16,
                  mae_vit_huge_patch14, mae_vit_large_patch16, mae_vit_small_patch16, mae_vit_tiny_patch16,
                  patchify, unpatchify)
from .mae_pretrainer import MAE_ARCHS, MAEPretrainer
from .necks import LayerNorm2d, SimpleFPN
from .pose import HeatmapHead, MSRAHeatmap, SimpleHeatmapHead, TopdownPoseEstimator, UDPHeatmap
from .pos_embed import get_2d_sincos_pos_embed, resize_pos_embed
from .pretrained import PretrainedLoadReport, load_pretrained_backbone
from .vit import Attention, Block, ViTEncoder
from .vitdet_attention import WindowRelPosAttention

__all__ = [
    'HeatmapHead', 'MSRAHeatmap', 'SimpleHeatmapHead', 'TopdownPoseEstimator', 'UDPHeatmap',
    'ViTClassifier',
    'MAE_ARCHS', 'MAEPretrainer', 'Attention', 'Block', 'ViTEncoder', 'MaskedAutoencoderViT',
    'CheckpointLoadResult',
    'load_mae_checkpoint', 'patchify', 'unpatchify', 'get_2d_sincos_pos_embed', 'resize_pos_embed',
    'mae_vit_tiny_patch16', 'mae_vit_small_patch16', 'mae_vit_base_patch16', 'mae_vit_large_patch16',
    'mae_vit_huge_patch14',
    'ARCH_SETTINGS', 'MAEViT', 'LayerNorm2d', 'SimpleFPN', 'WindowRelPosAttention', 'PretrainedLoadReport',
    'load_pretrained_backbone'
]
