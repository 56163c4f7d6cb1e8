"""The ViT encoder shared by MAE pretraining and every downstream task.

Built from timm layers (`PatchEmbed`, `Mlp` as `LeanMlp`, `DropPath`) with the official MAE / timm parameter names:
`patch_embed.proj`, `cls_token`, `pos_embed`, `blocks.N.norm1`, `blocks.N.attn.qkv`, `blocks.N.attn.proj`,
`blocks.N.norm2`, `blocks.N.mlp.fc1`, `blocks.N.mlp.fc2`, `norm`. An official MAE checkpoint, or a timm
`VisionTransformer` state dict with a cls token, loads without renaming.

`Attention` runs `torch.nn.functional.scaled_dot_product_attention` and accepts an additive `attn_bias`;
`Block` builds its attention module from `attn_layer` + `attn_kwargs`, so variants (window attention,
relative position bias: `vitdet_attention.py`) plug in without touching the encoder; `ViTEncoder` takes
per-block options (`block_attn_kwargs`) for variants that differ between blocks (ViTDet's global blocks).
"""
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Type, Union

import torch
import torch.nn.functional as F
from timm.layers import DropPath, LayerScale, PatchEmbed
from torch import nn

from .lean_mlp import LeanMlp
from .pos_embed import get_2d_sincos_pos_embed, record_pos_embed_grid, resize_pos_embed

NormLayer = Callable[[int], nn.Module]


def default_norm_layer(dim: int) -> nn.LayerNorm:
    """LayerNorm with eps 1e-6, as in the official MAE and timm ViTs."""
    return nn.LayerNorm(dim, eps=1e-6)


def prefer_fused_attention(q: torch.Tensor) -> bool:
    """Whether `scaled_dot_product_attention` is the faster path for `q`'s device and dtype.

    It is everywhere except bf16/fp16 on CPU, where the CPU flash kernel is slower than explicit matmuls on
    ViT shapes (2-4x in forward + backward; fp32 within 15 %; figures in docs/performance.md).
    """
    return q.device.type != 'cpu' or q.dtype == torch.float32


def explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_bias: Optional[torch.Tensor] = None,
                       dropout_p: float = 0.0) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + bias) v with explicit matmuls; same contract as scaled_dot_product_attention."""
    attn = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # attn: [N, h, L, L]
    if attn_bias is not None:
        attn = attn.masked_fill(~attn_bias, float('-inf')) if attn_bias.dtype == torch.bool else attn + attn_bias
    attn = attn.softmax(dim=-1)
    if dropout_p > 0.0:
        attn = F.dropout(attn, p=dropout_p)
    return attn @ v  # [N, h, L, d]


class Attention(nn.Module):
    """Multi-head self-attention through `scaled_dot_product_attention` (fused kernels where available).

    Args:
        dim: token width.
        num_heads: number of heads; must divide `dim`.
        qkv_bias: learn a bias for the qkv projection (MAE: True).
        attn_drop: dropout on the attention weights (training only).
        proj_drop: dropout after the output projection.
        fused_attn: True/False forces `scaled_dot_product_attention` / explicit matmuls; None (default)
            picks the faster one for the input (`prefer_fused_attention`).
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, fused_attn: Optional[bool] = None) -> None:
        super().__init__()
        self.fused_attn = fused_attn
        if dim % num_heads != 0:
            raise ValueError(f'dim {dim} must be divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, attn_bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Attend over the tokens of each sample.

        Args:
            x: tokens [N, L, D].
            attn_bias: optional additive bias broadcastable to [N, num_heads, L, L] (a boolean tensor is a
                keep-mask, as in `scaled_dot_product_attention`).

        Returns:
            [N, L, D].
        """
        batch, length, dim = x.shape  # x: [N, L, D]
        qkv = self.qkv(x).reshape(batch, length, 3, self.num_heads, self.head_dim)  # qkv: [N, L, 3, h, d]
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each: [N, h, L, d]
        if attn_bias is not None and attn_bias.dtype != torch.bool:
            attn_bias = attn_bias.to(q.dtype)
        dropout_p = self.attn_drop if self.training else 0.0
        fused = prefer_fused_attention(q) if self.fused_attn is None else self.fused_attn
        attend = F.scaled_dot_product_attention if fused else explicit_attention
        x = attend(q, k, v, attn_bias, dropout_p=dropout_p)  # x: [N, h, L, d]
        # contiguous() is the copy reshape makes anyway; torch.export decomposes reshape into an invalid view here
        x = x.transpose(1, 2).contiguous().flatten(2)  # x: [N, L, D]
        return self.proj_drop(self.proj(x))


class Block(nn.Module):
    """Pre-norm transformer block: x + drop_path(attn(norm1(x))), then x + drop_path(mlp(norm2(x))).

    Args:
        dim: token width.
        num_heads: attention heads.
        mlp_ratio: hidden width of the MLP relative to `dim`.
        qkv_bias: learn a bias for the qkv projection.
        proj_drop: dropout after the attention projection and inside the MLP.
        attn_drop: dropout on the attention weights.
        drop_path: stochastic depth rate of this block.
        act_layer: MLP activation.
        norm_layer: callable building a norm layer from a width; LayerNorm(eps=1e-6) when left out.
        attn_layer: attention class, called as `attn_layer(dim, num_heads=..., qkv_bias=..., attn_drop=...,
            proj_drop=..., **attn_kwargs)`.
        attn_kwargs: extra options of the attention module (for variants of `Attention`).
        layer_scale_init_value: learnable per-channel scales `ls1.gamma` / `ls2.gamma` on the attention and
            MLP branches (BEiT / CaiT layer scale, timm's names), starting at this value; None: no layer scale.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 proj_drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0,
                 act_layer: Type[nn.Module] = nn.GELU, norm_layer: Optional[NormLayer] = None,
                 attn_layer: Type[nn.Module] = Attention, attn_kwargs: Optional[Dict[str, Any]] = None,
                 layer_scale_init_value: Optional[float] = None) -> None:
        super().__init__()
        norm_layer = norm_layer or default_norm_layer
        self.norm1 = norm_layer(dim)
        self.attn = attn_layer(dim, num_heads=num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop,
                               proj_drop=proj_drop, **(attn_kwargs or {}))
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        # timm's Mlp whose backward recomputes the GELU instead of keeping it (lean_mlp.py)
        self.mlp = LeanMlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=act_layer,
                           drop=proj_drop)
        with_ls = layer_scale_init_value is not None
        self.ls1 = LayerScale(dim, init_values=layer_scale_init_value) if with_ls else nn.Identity()
        self.ls2 = LayerScale(dim, init_values=layer_scale_init_value) if with_ls else nn.Identity()

    def forward(self, x: torch.Tensor, attn_bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Args:
            x: tokens [N, L, D], or a token grid [N, H, W, D] for grid attention (`WindowRelPosAttention`):
                norms, MLP and drop path act on the last dimension only.
            attn_bias: optional additive attention bias, passed to the attention module.
        """
        x = x + self.drop_path(self.ls1(self.attn(self.norm1(x), attn_bias=attn_bias)))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))


def init_vit_weights(module: nn.Module) -> None:
    """The official MAE initialisation of one module (use with `model.apply`): xavier-uniform Linear
    weights with zero bias, LayerNorm weight 1 and bias 0."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        if module.weight is not None:
            nn.init.ones_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class ViTEncoder(nn.Module):
    """ViT encoder with a cls token and a fixed (by default) 2D sin-cos absolute position embedding.

    `forward_features` runs the whole image (no masking); `MaskedAutoencoderViT` subclasses this and
    adds masking and the decoder.

    Args:
        img_size: input size, an int or (height, width); each side must divide by the patch size.
        patch_size: side of the square patches.
        in_chans: image channels.
        embed_dim: token width.
        depth: number of blocks.
        num_heads: attention heads per block.
        mlp_ratio: MLP hidden width relative to `embed_dim`.
        qkv_bias: learn a bias for the qkv projections.
        drop_path_rate: stochastic depth rate of the last block, rising linearly from 0 at the first.
        norm_layer: callable building a norm layer from a width; LayerNorm(eps=1e-6) when left out.
        act_layer: MLP activation.
        trainable_pos_embed: let the optimiser update `pos_embed` (fine-tuning); MAE keeps it fixed.
        dynamic_img_size: accept inputs of other sizes (sides still divisible by the patch) and resize
            `pos_embed` to their grid on every forward.
        attn_layer: attention class for every block (see `Block`).
        attn_kwargs: options for that attention class.
        block_attn_kwargs: optional per-block options (one dict per block) merged over `attn_kwargs`.
        layer_scale_init_value: layer scale in every block (see `Block`); None: none.
    """

    def __init__(self, img_size: Union[int, Tuple[int, int]] = 224, patch_size: int = 16, in_chans: int = 3,
                 embed_dim: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, drop_path_rate: float = 0.0, norm_layer: Optional[NormLayer] = None,
                 act_layer: Type[nn.Module] = nn.GELU, trainable_pos_embed: bool = False,
                 dynamic_img_size: bool = False, attn_layer: Type[nn.Module] = Attention,
                 attn_kwargs: Optional[Dict[str, Any]] = None,
                 block_attn_kwargs: Optional[Sequence[Dict[str, Any]]] = None,
                 layer_scale_init_value: Optional[float] = None) -> None:
        super().__init__()
        norm_layer = norm_layer or default_norm_layer
        if block_attn_kwargs is not None and len(block_attn_kwargs) != depth:
            raise ValueError(f'block_attn_kwargs needs one dict per block ({depth}), got {len(block_attn_kwargs)}')
        per_block = [{**(attn_kwargs or {}), **(block_attn_kwargs[i] if block_attn_kwargs else {})}
                     for i in range(depth)]
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.embed_dim = embed_dim
        self.num_prefix_tokens = 1
        self.dynamic_img_size = dynamic_img_size
        self.patch_embed = PatchEmbed(img_size=img_size, patch_size=patch_size, in_chans=in_chans,
                                      embed_dim=embed_dim, strict_img_size=not dynamic_img_size)
        img_h, img_w = self.patch_embed.img_size
        if img_h % patch_size or img_w % patch_size:
            raise ValueError(f'img_size {(img_h, img_w)} must be divisible by patch_size {patch_size}')
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches + 1, embed_dim),
                                      requires_grad=trainable_pos_embed)  # [1, 1 + L, D]
        dpr = torch.linspace(0, drop_path_rate, depth, device='cpu').tolist()  # stochastic depth per block
        self.blocks = nn.ModuleList([
            Block(embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_path=dpr[i],
                  act_layer=act_layer, norm_layer=norm_layer, attn_layer=attn_layer, attn_kwargs=per_block[i],
                  layer_scale_init_value=layer_scale_init_value)
            for i in range(depth)
        ])
        self.norm = norm_layer(embed_dim)
        self.register_state_dict_post_hook(record_pos_embed_grid)  # checkpoints tell their grid (pos_embed.py)

    @property
    def grid_size(self) -> Tuple[int, int]:
        """(grid_h, grid_w) of patches for the configured img_size."""
        return tuple(self.patch_embed.grid_size)

    @property
    def num_patches(self) -> int:
        return self.patch_embed.num_patches

    def initialize_weights(self) -> None:
        """Official MAE initialisation of the encoder: sin-cos pos_embed, patch-embed conv like a linear
        (xavier-uniform on the weight viewed as [out, in * p * p]), cls token normal(std 0.02), then
        `init_vit_weights` on every Linear and LayerNorm."""
        with torch.no_grad():
            self.pos_embed.copy_(get_2d_sincos_pos_embed(self.embed_dim, self.grid_size, cls_token=True)[None])
        weight = self.patch_embed.proj.weight.data  # weight: [D, C, p, p]
        nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))  # viewed as [D, C*p*p]
        nn.init.normal_(self.cls_token, std=0.02)
        self.apply(init_vit_weights)

    def _pos_embed_for(self, grid_hw: Tuple[int, int]) -> torch.Tensor:
        """`pos_embed` [1, 1 + L, D] for a patch grid, resized when it differs from the configured one."""
        if tuple(grid_hw) == self.grid_size:
            return self.pos_embed
        return resize_pos_embed(self.pos_embed, grid_hw, old_grid=self.grid_size,
                                num_prefix_tokens=self.num_prefix_tokens)

    def embed_patches(self, imgs: torch.Tensor) -> torch.Tensor:
        """Patch embedding plus the position embedding of the patches (no cls token yet).

        Args:
            imgs: [N, C, H, W].

        Returns:
            [N, L, D] with L = (H / p) * (W / p).
        """
        grid_hw = (imgs.shape[-2] // self.patch_size, imgs.shape[-1] // self.patch_size)
        x = self.patch_embed(imgs)  # x: [N, L, D]
        return x + self._pos_embed_for(grid_hw)[:, 1:, :]

    def prepend_cls_token(self, x: torch.Tensor) -> torch.Tensor:
        """Prepend the cls token (with its position embedding) to tokens [N, L', D] -> [N, 1 + L', D]."""
        cls_token = self.cls_token + self.pos_embed[:, :1, :]  # cls_token: [1, 1, D]
        cls_tokens = cls_token.expand(x.shape[0], -1, -1)  # cls_tokens: [N, 1, D]
        return torch.cat([cls_tokens, x], dim=1)  # [N, 1 + L', D]

    def forward_features(self, imgs: torch.Tensor) -> torch.Tensor:
        """Encode whole images.

        Args:
            imgs: [N, C, H, W].

        Returns:
            normalised tokens [N, 1 + L, D], cls token first.
        """
        x = self.prepend_cls_token(self.embed_patches(imgs))  # x: [N, 1 + L, D]
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        """Same as `forward_features`."""
        return self.forward_features(imgs)


__all__ = ['Attention', 'Block', 'ViTEncoder', 'default_norm_layer', 'init_vit_weights']
