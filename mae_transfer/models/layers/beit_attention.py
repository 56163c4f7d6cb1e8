"""BEiT-style attention with a relative position bias per block (Bao et al. 2021), as the MAE paper fine-tunes
for ADE20K (BEiT's segmentation code; mmseg 1.2.2 `BEiTAttention` / `MAEAttention`).

Tokens keep the MAE layout `x: [N, 1 + h * w, D]`, cls token first. Each block learns one table
`relative_position_bias_table: [(2h - 1) * (2w - 1) + 3, heads]`: one entry per 2D offset between two patches,
plus three for the cls token (cls -> patch, patch -> cls, cls -> cls, in that order at the end). The additive
bias of query i towards key j is `table[index[i, j]]` per head; it is zero-initialised (MAE's choice; BEiT
itself draws it from trunc_normal(0.02)), so a fresh table leaves the pretrained attention unchanged.

The bias reaches `scaled_dot_product_attention` as an additive mask, through `Attention`'s `attn_bias`: the
backbone asks each block's attention for `relative_position_bias(grid_hw)` and passes it down, so plain
`Attention.forward` does the rest (fused or explicit, as everywhere).

Another grid (input size) than the table's: the patch-to-patch part, a (2h - 1) x (2w - 1) map per head, is
resized bicubically (align_corners=False) and the three cls entries are kept. mmseg fixes the grid at build time
and resizes a loaded table of another size with BEiT's geometric-sequence interpolation instead
(`resize_rel_pos_embed`); both keep the table's centre (offset 0) and its cls entries.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .vit import Attention

NUM_CLS_ENTRIES = 3  # cls -> patch, patch -> cls, cls -> cls


def rel_pos_bias_table_size(grid_hw: Tuple[int, int]) -> int:
    """Rows of a BEiT table for a patch grid (h, w): (2h - 1) * (2w - 1) + 3."""
    return (2 * grid_hw[0] - 1) * (2 * grid_hw[1] - 1) + NUM_CLS_ENTRIES


def rel_pos_bias_index(grid_hw: Tuple[int, int]) -> torch.Tensor:
    """Index [1 + L, 1 + L] into a BEiT table for the tokens (cls, then the h x w patches row-major).

    Entry [i, j] of two patches is (dy + h - 1) * (2w - 1) + (dx + w - 1) with (dy, dx) = pos(i) - pos(j);
    row 0 (cls -> patch) is T - 3, column 0 (patch -> cls) T - 2 and [0, 0] T - 1, T the table's rows.
    """
    grid_h, grid_w = grid_hw
    coords = torch.stack(torch.meshgrid(torch.arange(grid_h), torch.arange(grid_w), indexing='ij')).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :]  # rel: [2, L, L], (dy, dx) of query minus key
    patch_index = (rel[0] + grid_h - 1) * (2 * grid_w - 1) + (rel[1] + grid_w - 1)  # [L, L]
    size = rel_pos_bias_table_size(grid_hw)
    length = grid_h * grid_w
    index = torch.empty(length + 1, length + 1, dtype=torch.long)
    index[1:, 1:] = patch_index
    index[0, :] = size - 3
    index[:, 0] = size - 2
    index[0, 0] = size - 1
    return index  # [1 + L, 1 + L]


def resize_rel_pos_bias_table(table: torch.Tensor, old_grid: Tuple[int, int],
                              new_grid: Tuple[int, int]) -> torch.Tensor:
    """A BEiT table [(2h - 1)(2w - 1) + 3, heads] for another grid: the offset map resized bicubically per
    head (align_corners=False), the three cls entries kept."""
    if tuple(old_grid) == tuple(new_grid):
        return table
    heads = table.shape[1]
    old_h, old_w = 2 * old_grid[0] - 1, 2 * old_grid[1] - 1
    new_h, new_w = 2 * new_grid[0] - 1, 2 * new_grid[1] - 1
    offsets, cls_entries = table[:-NUM_CLS_ENTRIES], table[-NUM_CLS_ENTRIES:]  # [old_h * old_w, heads], [3, heads]
    grid = offsets.t().reshape(1, heads, old_h, old_w).float()  # grid: [1, heads, old_h, old_w]
    grid = F.interpolate(grid, size=(new_h, new_w), mode='bicubic', align_corners=False)  # [1, heads, new_h, new_w]
    offsets = grid.reshape(heads, new_h * new_w).t().to(table.dtype)  # [new_h * new_w, heads]
    return torch.cat([offsets, cls_entries], dim=0)  # [(2H - 1)(2W - 1) + 3, heads]


def grid_of_table(rows: int) -> Tuple[int, int]:
    """The square patch grid (s, s) a BEiT table of `rows` rows was built for ((2s - 1)^2 + 3 rows).

    Raises:
        ValueError: `rows` is no such size (a non-square grid cannot be read off the table alone).
    """
    side = round((rows - NUM_CLS_ENTRIES) ** 0.5)
    if side % 2 == 0 or side * side != rows - NUM_CLS_ENTRIES:
        raise ValueError(f'a relative_position_bias_table of {rows} rows is not (2s - 1)^2 + 3 for a square grid')
    return (side + 1) // 2, (side + 1) // 2


class BEiTRelPosAttention(Attention):
    """`Attention` plus BEiT's per-block relative position bias over the cls token and the patch grid.

    Same parameters as `Attention` (`qkv`, `proj`, so MAE weights load unchanged) plus
    `relative_position_bias_table` (zero-initialised); the index is a non-persistent buffer, rebuilt for any grid.

    Args:
        dim: token width.
        num_heads: attention heads.
        qkv_bias: learn a bias for the qkv projection.
        attn_drop: dropout on the attention weights.
        proj_drop: dropout after the output projection.
        fused_attn: as in `Attention`.
        rel_pos_grid: (h, w) patch grid the table is sized for; other grids resize it on the fly.
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, fused_attn: Optional[bool] = None,
                 rel_pos_grid: Tuple[int, int] = (14, 14)) -> None:
        super().__init__(dim, num_heads=num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop,
                         fused_attn=fused_attn)
        self.rel_pos_grid = (int(rel_pos_grid[0]), int(rel_pos_grid[1]))
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros(rel_pos_bias_table_size(self.rel_pos_grid), num_heads))  # [(2h-1)(2w-1) + 3, heads]
        self.register_buffer('relative_position_index', rel_pos_bias_index(self.rel_pos_grid), persistent=False)

    def extra_repr(self) -> str:
        return f'rel_pos_grid={self.rel_pos_grid}'

    def relative_position_bias(self, grid_hw: Tuple[int, int]) -> torch.Tensor:
        """The additive bias [1, heads, 1 + L, 1 + L] for tokens (cls, then a grid_hw patch grid)."""
        grid_hw = (int(grid_hw[0]), int(grid_hw[1]))
        table = self.relative_position_bias_table  # [T, heads]
        index = self.relative_position_index
        if grid_hw != self.rel_pos_grid:
            table = resize_rel_pos_bias_table(table, self.rel_pos_grid, grid_hw)
            index = rel_pos_bias_index(grid_hw).to(table.device)
        length = index.shape[0]
        bias = table[index.reshape(-1)].reshape(length, length, -1)  # bias: [1 + L, 1 + L, heads]
        return bias.permute(2, 0, 1).unsqueeze(0)  # [1, heads, 1 + L, 1 + L]

    def forward(self, x: torch.Tensor, attn_bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Attention over [N, 1 + L, D] with the relative position bias.

        Args:
            x: tokens [N, 1 + L, D], cls first.
            attn_bias: the bias from `relative_position_bias` for the tokens' grid (the backbone passes it);
                when None, the tokens must be the table's own grid.
        """
        if attn_bias is None:
            if x.shape[1] != self.rel_pos_grid[0] * self.rel_pos_grid[1] + 1:
                raise ValueError(f'{x.shape[1]} tokens are not 1 + {self.rel_pos_grid}: pass attn_bias='
                                 'relative_position_bias(grid_hw) for another grid')
            attn_bias = self.relative_position_bias(self.rel_pos_grid)
        return super().forward(x, attn_bias=attn_bias)


__all__ = ['BEiTRelPosAttention', 'grid_of_table', 'rel_pos_bias_index', 'rel_pos_bias_table_size',
           'resize_rel_pos_bias_table']
