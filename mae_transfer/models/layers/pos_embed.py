"""Absolute position embeddings for ViTs: the fixed 2D sin-cos table of MAE, and resizing to a new grid.

The sin-cos table reproduces the official MAE `util/pos_embed.py` bit for bit (computed in float64, returned
in float32), so a decoder trained by the official code sees the same `decoder_pos_embed` when we recompute
it. Channel layout for an embedding of width D (D divisible by 4), for the patch in row `y`, column `x`:

    [0, D/4)      sin(x * omega_k)        omega_k = 1 / 10000 ** (k / (D / 4)),  k = 0 .. D/4 - 1
    [D/4, D/2)    cos(x * omega_k)
    [D/2, 3D/4)   sin(y * omega_k)
    [3D/4, D)     cos(y * omega_k)

(The official code calls the first half `emb_h`, but because it builds the grid with `np.meshgrid(grid_w,
grid_h)` the first half in fact encodes the column index; we keep that layout.) Rows of the table follow
the patch order of `PatchEmbed`: row-major over (grid_h, grid_w). With `cls_token=True` a row of zeros is
prepended for the cls token.
"""
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
from timm.layers import resample_abs_pos_embed
from torch import nn

GridSize = Union[int, Sequence[int]]

# Where a ViT records the patch grid of its pos_embed in its state-dict metadata (`state_dict._metadata[name]`,
# kept by torch.save and mmengine's checkpoints), so that a checkpoint tells its grid even for a learned table:
# 81 = 1 + 8 * 10 positions would otherwise look like a square 9 x 9 grid.
GRID_METADATA_KEY = 'pos_embed_grid'


def record_pos_embed_grid(module: nn.Module, state_dict: Dict[str, Any], prefix: str,
                          local_metadata: Dict[str, Any]) -> None:
    """State-dict post hook (`register_state_dict_post_hook`) writing `module.grid_size` into the metadata."""
    local_metadata[GRID_METADATA_KEY] = list(grid_tuple(module.grid_size))


def grid_tuple(grid_size: GridSize) -> Tuple[int, int]:
    """Turn an int or an (h, w) pair into an (h, w) tuple."""
    if isinstance(grid_size, int):
        return grid_size, grid_size
    grid_h, grid_w = grid_size
    return int(grid_h), int(grid_w)


def get_1d_sincos_pos_embed_from_grid(embed_dim: int, pos: torch.Tensor) -> torch.Tensor:
    """Sin-cos embedding of a list of positions.

    Args:
        embed_dim: output width per position; must be even.
        pos: positions of any shape; flattened.

    Returns:
        [M, embed_dim] float64 table, sines in the first half and cosines in the second.
    """
    if embed_dim % 2 != 0:
        raise ValueError(f'embed_dim must be even for a 1D sin-cos embedding, got {embed_dim}')
    omega = torch.arange(embed_dim // 2, dtype=torch.float64, device='cpu') / (embed_dim / 2.0)
    omega = 1.0 / 10000 ** omega  # omega: [D/2]
    pos = pos.reshape(-1).to(torch.float64)  # pos: [M]
    out = torch.outer(pos, omega)  # out: [M, D/2]
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)  # [M, D]


def get_2d_sincos_pos_embed_from_grid(embed_dim: int, grid: torch.Tensor) -> torch.Tensor:
    """Sin-cos embedding of 2D coordinates.

    Args:
        embed_dim: output width per position; must be divisible by 4.
        grid: [2, grid_h, grid_w] coordinates; grid[0] fills the first half of the channels, grid[1] the
            second (the official code passes column indices in grid[0] and row indices in grid[1]).

    Returns:
        [grid_h * grid_w, embed_dim] float64 table.
    """
    if embed_dim % 4 != 0:
        raise ValueError(f'embed_dim must be divisible by 4 for a 2D sin-cos embedding, got {embed_dim}')
    emb_first = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[0])  # [H*W, D/2]
    emb_second = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[1])  # [H*W, D/2]
    return torch.cat([emb_first, emb_second], dim=1)  # [H*W, D]


def get_2d_sincos_pos_embed(embed_dim: int, grid_size: GridSize, cls_token: bool = False) -> torch.Tensor:
    """The fixed 2D sin-cos position embedding of MAE for a (grid_h, grid_w) grid of patches.

    Args:
        embed_dim: width of the embedding; must be divisible by 4.
        grid_size: an int for a square grid or (grid_h, grid_w).
        cls_token: prepend a row of zeros for the cls token.

    Returns:
        float32 tensor [grid_h * grid_w, embed_dim], or [1 + grid_h * grid_w, embed_dim] with cls_token.
    """
    grid_h, grid_w = grid_tuple(grid_size)
    rows = torch.arange(grid_h, dtype=torch.float64, device='cpu')
    cols = torch.arange(grid_w, dtype=torch.float64, device='cpu')
    row_grid, col_grid = torch.meshgrid(rows, cols, indexing='ij')  # each: [H, W]
    grid = torch.stack([col_grid, row_grid], dim=0)  # grid: [2, H, W], columns first as in the official code
    pos_embed = get_2d_sincos_pos_embed_from_grid(embed_dim, grid)  # pos_embed: [H*W, D]
    if cls_token:
        pos_embed = torch.cat([torch.zeros(1, embed_dim, dtype=pos_embed.dtype, device='cpu'), pos_embed], dim=0)
    return pos_embed.float()


def resize_pos_embed(pos_embed: torch.Tensor, new_grid: GridSize, old_grid: Optional[GridSize] = None,
                     num_prefix_tokens: int = 1, interpolation: str = 'bicubic',
                     antialias: bool = False) -> torch.Tensor:
    """Resize an absolute position embedding to a new patch grid; prefix (cls) tokens are kept as they are.

    Matches the official MAE `interpolate_pos_embed` and ViTDet `get_abs_pos` (bicubic, align_corners=False,
    no antialiasing) by default.

    Args:
        pos_embed: [1, num_prefix_tokens + old_h * old_w, D].
        new_grid: target grid, an int or (h, w).
        old_grid: grid of `pos_embed`; inferred as square from its length when left out.
        num_prefix_tokens: leading tokens (cls, registers) that carry no spatial position.
        interpolation: mode for `torch.nn.functional.interpolate`.
        antialias: antialias when shrinking (timm's default is True, the official MAE code's is False).

    Returns:
        [1, num_prefix_tokens + new_h * new_w, D], same dtype as the input.
    """
    if pos_embed.dim() != 3 or pos_embed.shape[0] != 1:
        raise ValueError(f'pos_embed must have shape [1, num_tokens, dim], got {tuple(pos_embed.shape)}')
    new_h, new_w = grid_tuple(new_grid)
    num_spatial = pos_embed.shape[1] - num_prefix_tokens
    if old_grid is None:
        side = int(round(num_spatial ** 0.5))
        if side * side != num_spatial:
            raise ValueError(f'cannot infer the grid of a pos_embed with {num_spatial} spatial tokens '
                             '(not a square); pass old_grid=(h, w)')
        old_h, old_w = side, side
    else:
        old_h, old_w = grid_tuple(old_grid)
        if old_h * old_w != num_spatial:
            raise ValueError(f'old_grid {(old_h, old_w)} does not match the {num_spatial} spatial tokens '
                             f'of pos_embed {tuple(pos_embed.shape)}')
    if (old_h, old_w) == (new_h, new_w):
        return pos_embed
    # prefix: [1, P, D] kept aside; spatial part [1, old_h*old_w, D] -> [1, D, old_h, old_w] -> resized
    return resample_abs_pos_embed(pos_embed, new_size=[new_h, new_w], old_size=[old_h, old_w],
                                  num_prefix_tokens=num_prefix_tokens, interpolation=interpolation,
                                  antialias=antialias)  # [1, P + new_h*new_w, D]
