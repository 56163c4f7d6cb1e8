"""The one table of ViT sizes. Every factory, backbone, pretrainer, checkpoint detector and the zoo reads it.

    arch = ARCHS['base']          # ViTArch(embed_dim=768, depth=12, num_heads=12, patch_size=16)
    find_arch(768, 12)            # 'base'

Our `tiny` (192-d x 4 blocks) is a test and CPU-demo size of this project: it is NOT timm's / DeiT's ViT-Ti
(192-d x 12 blocks), which is listed separately as `vit-ti`, so a ViT-Ti checkpoint is never taken for ours.
Sizes are told apart by (width, depth), never by width alone.
"""
from dataclasses import dataclass
from typing import Dict, Optional


@dataclass(frozen=True)
class ViTArch:
    """Dimensions of one ViT size.

    Attributes:
        embed_dim: token width.
        depth: number of transformer blocks.
        num_heads: attention heads per block.
        patch_size: side of the square patches of the reference model.
        mlp_ratio: MLP hidden width / embed_dim.
    """
    embed_dim: int
    depth: int
    num_heads: int
    patch_size: int = 16
    mlp_ratio: float = 4.0


ARCHS: Dict[str, ViTArch] = {
    'tiny': ViTArch(embed_dim=192, depth=4, num_heads=3),      # ours: tests and CPU demos, not ViT-Ti
    'vit-ti': ViTArch(embed_dim=192, depth=12, num_heads=3),   # timm vit_tiny_patch16 / DeiT-Ti
    'small': ViTArch(embed_dim=384, depth=12, num_heads=6),
    'base': ViTArch(embed_dim=768, depth=12, num_heads=12),
    'large': ViTArch(embed_dim=1024, depth=24, num_heads=16),
    'huge': ViTArch(embed_dim=1280, depth=32, num_heads=16, patch_size=14),
}


def get_arch(name: str) -> ViTArch:
    """The dimensions of `name`, with the known names in the error when there is none.

    Args:
        name: a key of `ARCHS`.
    """
    if name not in ARCHS:
        raise ValueError(f'unknown arch {name!r}; choose one of {sorted(ARCHS)}')
    return ARCHS[name]


def find_arch(embed_dim: int, depth: int) -> Optional[str]:
    """The name of the size with this width and depth, or None for a custom size.

    Args:
        embed_dim: token width.
        depth: number of blocks.
    """
    for name, arch in ARCHS.items():
        if (arch.embed_dim, arch.depth) == (embed_dim, depth):
            return name
    return None


__all__ = ['ARCHS', 'ViTArch', 'find_arch', 'get_arch']
