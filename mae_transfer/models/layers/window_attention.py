"""ViTDet attention (Li et al. 2022): window attention with border padding and decomposed relative positions.

Tokens stay on their 2D grid, `x: [N, H, W, D]`, so that a block can cut them into windows and the
relative-position terms know each token's row and column. There is no cls token on this path (ViTDet drops it).

Decomposed relative positions: for a query at (row i, column j) and a key at (row k, column l), the attention
logit gets the additive bias `q . R_h[i - k] + q . R_w[j - l]` (q unscaled), with learnt tables
`rel_pos_h: [2 * S_h - 1, head_dim]` and `rel_pos_w: [2 * S_w - 1, head_dim]` for a grid of S_h x S_w tokens.
The tables are linearly interpolated when the grid at run time has another size.

How the bias reaches `scaled_dot_product_attention` (`rel_pos_impl`):

- 'fold' (default): the bias is a dot product, so it is folded into the keys. With per-query terms
  `rel_h: [L, S_h]`, `rel_w: [L, S_w]` and one-hot key rows/columns `E_h: [L, S_h]`, `E_w: [L, S_w]`,
  `[q / sqrt(d), rel_h, rel_w] . [k, E_h, E_w] = q . k / sqrt(d) + rel_h[row(k)] + rel_w[col(k)]`.
  Nothing of size L x L is ever materialised, and the fused (flash) kernel runs, which on CPU refuses an
  additive mask that needs a gradient and q/k/v of different widths (so v is zero-padded to the new width).
  The price is a 3x wider q.k and p.v; in exchange no L x L attention map is kept for the backward pass, at
  about the speed of the other paths on CPU (measurements in docs/performance.md).
- 'mask': the bias `[N, heads, L, L]` is materialised and passed as SDPA's additive `attn_mask` (the kernel
  choice is then SDPA's; on CUDA its memory-efficient kernel has a bias gradient: not measured here).
The explicit path (bf16/fp16 on CPU, see `prefer_fused_attention`) always adds the materialised bias.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .vit import Attention, explicit_attention, prefer_fused_attention

REL_POS_IMPLS = ('fold', 'mask')


def window_partition(x: torch.Tensor, window_size: int) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Cut a token grid into non-overlapping windows, zero-padding the bottom/right border first.

    Args:
        x: [N, H, W, C].
        window_size: side of the square windows.

    Returns:
        windows [N * nH * nW, ws, ws, C] (window-major per sample, row-major over windows) and the padded
        grid (Hp, Wp) = (nH * ws, nW * ws).
    """
    n, h, w, c = x.shape
    pad_h, pad_w = (-h) % window_size, (-w) % window_size
    if pad_h or pad_w:
        x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))  # x: [N, Hp, Wp, C], zeros below and right
    hp, wp = h + pad_h, w + pad_w
    x = x.view(n, hp // window_size, window_size, wp // window_size, window_size, c)  # [N, nH, ws, nW, ws, C]
    windows = x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size, window_size, c)  # [N*nH*nW, ws, ws, C]
    return windows, (hp, wp)


def window_unpartition(windows: torch.Tensor, window_size: int, padded_hw: Tuple[int, int],
                       hw: Tuple[int, int]) -> torch.Tensor:
    """Inverse of `window_partition`: stitch the windows back and crop the padding.

    Args:
        windows: [N * nH * nW, ws, ws, D].
        window_size: side of the windows.
        padded_hw: (Hp, Wp) returned by `window_partition`.
        hw: the grid (H, W) before padding.

    Returns:
        [N, H, W, D].
    """
    hp, wp = padded_hw
    h, w = hw
    num_h, num_w = hp // window_size, wp // window_size
    n = windows.shape[0] // (num_h * num_w)
    x = windows.view(n, num_h, num_w, window_size, window_size, -1)  # x: [N, nH, nW, ws, ws, D]
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(n, hp, wp, -1)  # x: [N, Hp, Wp, D]
    if hp > h or wp > w:
        x = x[:, :h, :w, :].contiguous()  # x: [N, H, W, D]
    return x


def interpolate_rel_pos(rel_pos: torch.Tensor, num_offsets: int) -> torch.Tensor:
    """A relative-position table [M, d] at `num_offsets` rows: linearly interpolated (align_corners=False, as
    ViTDet's `get_rel_pos`) when M differs, the table itself otherwise. `size` tokens along an axis need
    2 * size - 1 rows, for the offsets -(size - 1) .. size - 1."""
    if rel_pos.shape[0] == num_offsets:
        return rel_pos
    table = rel_pos.t().unsqueeze(0)  # table: [1, d, M], channels first for 1D interpolation
    table = F.interpolate(table, size=num_offsets, mode='linear')  # table: [1, d, num_offsets]
    return table.squeeze(0).t()  # [num_offsets, d]


def offset_index(size: int, device: torch.device) -> torch.Tensor:
    """[size, size] int64: entry [i, k] is the table row of the offset i - k (rows start at -(size - 1))."""
    positions = torch.arange(size, device=device)
    return positions[:, None] - positions[None, :] + (size - 1)  # in [0, 2*size-2]


def get_rel_pos(size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """Relative-position embeddings for every (query, key) pair along one axis of `size` tokens.

    Args:
        size: number of tokens along the axis (queries and keys alike: self-attention).
        rel_pos: table [M, d] for offsets -(M - 1) / 2 .. (M - 1) / 2, interpolated when M != 2 * size - 1.

    Returns:
        [size, size, d]: entry [i, k] embeds the offset i - k.
    """
    return interpolate_rel_pos(rel_pos, 2 * size - 1)[offset_index(size, rel_pos.device)]


def decomposed_rel_pos_terms(q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor,
                             grid_hw: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-query relative-position terms: the bias of query i towards key j is rel_h[i, row(j)] + rel_w[i, col(j)],
    with rel_h[i, k] = q_i . R_h[row(i) - k] and rel_w[i, l] = q_i . R_w[col(i) - l] (ViTDet's
    `add_decomposed_rel_pos`).

    The queries meet both whole tables in one product, whose entries are then picked per query row / column.
    Autograd so keeps a single copy of q for the tables' gradients (ViTDet's two einsums keep two); the
    product is (2h - 1 + 2w - 1) / (h + w), about 2x, the einsums' FLOPs, which are tiny next to attention's.

    Args:
        q: queries [N, heads, h * w, d] (not scaled).
        rel_pos_h: row table [M_h, d].
        rel_pos_w: column table [M_w, d].
        grid_hw: (h, w) of the tokens, row-major in `q`.

    Returns:
        rel_h [N, heads, h * w, h] and rel_w [N, heads, h * w, w].
    """
    n, heads, length, dim = q.shape
    grid_h, grid_w = grid_hw
    tables = torch.cat([interpolate_rel_pos(rel_pos_h, 2 * grid_h - 1),
                        interpolate_rel_pos(rel_pos_w, 2 * grid_w - 1)]).to(q.dtype)  # [2h-1 + 2w-1, d]
    scores = q.reshape(-1, dim) @ tables.t()  # scores: [N*heads*L, (2h-1) + (2w-1)], q . every table row
    scores = scores.view(n, heads, grid_h, grid_w, -1)  # scores: [N, heads, h, w, 2h-1 + 2w-1]
    # for query (row r, column c): the table rows of the offsets r - k (key rows k) and, after the h-table,
    # of c - l (key columns l). Indexing, not gather: its backward keeps the indices, not the scores.
    rows = torch.arange(grid_h, device=q.device)[:, None, None]  # rows: [h, 1, 1]
    cols = torch.arange(grid_w, device=q.device)[None, :, None]  # cols: [1, w, 1]
    offsets_h = offset_index(grid_h, q.device)[:, None, :]  # offsets_h: [h, 1, h]
    offsets_w = offset_index(grid_w, q.device)[None, :, :] + (2 * grid_h - 1)  # offsets_w: [1, w, w]
    rel_h = scores[:, :, rows, cols, offsets_h]  # rel_h: [N, heads, h, w, h]
    rel_w = scores[:, :, rows, cols, offsets_w]  # rel_w: [N, heads, h, w, w]
    return rel_h.reshape(n, heads, length, grid_h), rel_w.reshape(n, heads, length, grid_w)


def rel_pos_bias(rel_h: torch.Tensor, rel_w: torch.Tensor, grid_hw: Tuple[int, int]) -> torch.Tensor:
    """Materialise the additive bias [N, heads, L, L] from the per-query terms of `decomposed_rel_pos_terms`."""
    n, heads, length, _ = rel_h.shape
    grid_h, grid_w = grid_hw
    bias = rel_h.view(n, heads, length, grid_h, 1) + rel_w.view(n, heads, length, 1, grid_w)  # [N, n, L, h, w]
    return bias.reshape(n, heads, length, grid_h * grid_w)  # [N, heads, L, L]


def folded_rel_pos_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, rel_h: torch.Tensor,
                             rel_w: torch.Tensor, dropout_p: float = 0.0) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + bias) v with the decomposed bias folded into widened queries and keys.

    Args:
        q, k, v: [N, heads, L, d] with L = h * w row-major.
        rel_h: [N, heads, L, h]; rel_w: [N, heads, L, w] (`decomposed_rel_pos_terms`).
        dropout_p: attention dropout.

    Returns:
        [N, heads, L, d].
    """
    n, heads, length, dim = q.shape
    grid_h, grid_w = rel_h.shape[-1], rel_w.shape[-1]
    eye_h = torch.eye(grid_h, dtype=k.dtype, device=k.device)
    eye_w = torch.eye(grid_w, dtype=k.dtype, device=k.device)
    key_row = eye_h.repeat_interleave(grid_w, dim=0)  # key_row: [L, h], one-hot row of key j = j // w
    key_col = eye_w.repeat(grid_h, 1)  # key_col: [L, w], one-hot column of key j = j % w
    extra = grid_h + grid_w
    q_wide = torch.cat([q * dim ** -0.5, rel_h, rel_w], dim=-1)  # q_wide: [N, heads, L, d + h + w]
    k_wide = torch.cat([k, key_row.expand(n, heads, length, grid_h), key_col.expand(n, heads, length, grid_w)],
                       dim=-1)  # k_wide: [N, heads, L, d + h + w]
    v_wide = F.pad(v, (0, extra))  # v_wide: [N, heads, L, d + h + w]; fused kernels want one head width
    out = F.scaled_dot_product_attention(q_wide, k_wide, v_wide, dropout_p=dropout_p, scale=1.0)
    return out[..., :dim]  # [N, heads, L, d]


class WindowRelPosAttention(Attention):
    """Multi-head attention on a token grid: global or in windows, optionally with decomposed rel-pos.

    Same parameters as `Attention` (`qkv`, `proj`) plus `rel_pos_h` / `rel_pos_w` with `use_rel_pos`, so
    MAE weights load unchanged and the tables start at zero (the block then equals plain attention).

    Args:
        dim: token width.
        num_heads: attention heads.
        qkv_bias: learn a bias for the qkv projection.
        attn_drop: dropout on the attention weights.
        proj_drop: dropout after the output projection.
        fused_attn: as in `Attention`.
        window_size: side of the attention windows; 0 for global attention over the whole grid.
        use_rel_pos: add decomposed relative position biases.
        rel_pos_grid: (h, w) grid the tables are sized for when global (window blocks use the window);
            other grids interpolate the tables.
        rel_pos_impl: 'fold' or 'mask', how the bias reaches `scaled_dot_product_attention` (module docstring).
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, fused_attn: Optional[bool] = None, window_size: int = 0,
                 use_rel_pos: bool = False, rel_pos_grid: Tuple[int, int] = (14, 14),
                 rel_pos_impl: str = 'fold') -> None:
        super().__init__(dim, num_heads=num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop,
                         fused_attn=fused_attn)
        if rel_pos_impl not in REL_POS_IMPLS:
            raise ValueError(f'rel_pos_impl must be one of {REL_POS_IMPLS}, got {rel_pos_impl!r}')
        self.window_size = window_size
        self.use_rel_pos = use_rel_pos
        self.rel_pos_impl = rel_pos_impl
        if use_rel_pos:
            size_h, size_w = (window_size, window_size) if window_size > 0 else tuple(rel_pos_grid)
            # zero init (ViTDet): a fresh table leaves the pretrained attention unchanged
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * size_h - 1, self.head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * size_w - 1, self.head_dim))

    def extra_repr(self) -> str:
        return f'window_size={self.window_size}, use_rel_pos={self.use_rel_pos}'

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               grid_hw: Tuple[int, int]) -> torch.Tensor:
        """Attention of q, k, v [B, heads, L, d] over a row-major grid (h, w); returns [B, heads, L, d]."""
        dropout_p = self.attn_drop if self.training else 0.0
        fused = prefer_fused_attention(q) if self.fused_attn is None else self.fused_attn
        if not self.use_rel_pos:
            attend = F.scaled_dot_product_attention if fused else explicit_attention
            return attend(q, k, v, None, dropout_p=dropout_p)
        rel_h, rel_w = decomposed_rel_pos_terms(q, self.rel_pos_h, self.rel_pos_w, grid_hw)
        if fused and self.rel_pos_impl == 'fold':
            return folded_rel_pos_attention(q, k, v, rel_h, rel_w, dropout_p=dropout_p)
        bias = rel_pos_bias(rel_h, rel_w, grid_hw)  # bias: [B, heads, L, L]
        attend = F.scaled_dot_product_attention if fused else explicit_attention
        return attend(q, k, v, bias, dropout_p=dropout_p)

    def forward(self, x: torch.Tensor, attn_bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Attend within windows (or globally) on a token grid.

        Args:
            x: tokens on their grid [N, H, W, D].
            attn_bias: not supported here (the rel-pos bias is built inside); must be None.

        Returns:
            [N, H, W, D].
        """
        if attn_bias is not None:
            raise ValueError('WindowRelPosAttention builds its own bias; attn_bias must be None')
        n, grid_h, grid_w, dim = x.shape  # x: [N, H, W, D]
        if self.window_size > 0:
            # Partition before the projection: the copy moves D channels rather than 3D, and the padded
            # (zero) tokens project to the qkv bias exactly as in ViTDet.
            x, padded_hw = window_partition(x, self.window_size)  # x: [B = N*nW, ws, ws, D]
        batch, h, w, _ = x.shape  # (h, w): the window, or the whole grid
        qkv = self.qkv(x).reshape(batch, h * w, 3, self.num_heads, self.head_dim)  # qkv: [B, h*w, 3, heads, d]
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each: [B, heads, h*w, d]
        x = self.attend(q, k, v, (h, w))  # x: [B, heads, h*w, d]
        x = x.transpose(1, 2).reshape(batch, h, w, dim)  # x: [B, h, w, D]
        if self.window_size > 0:
            x = window_unpartition(x, self.window_size, padded_hw, (grid_h, grid_w))  # x: [N, H, W, D]
        # the output projection is per token too: it runs after cropping
        return self.proj_drop(self.proj(x))


__all__ = ['WindowRelPosAttention', 'decomposed_rel_pos_terms', 'folded_rel_pos_attention', 'get_rel_pos',
           'interpolate_rel_pos', 'offset_index', 'rel_pos_bias', 'window_partition', 'window_unpartition']
