"""MAEViT: the MAE encoder as a registered OpenMMLab backbone returning NCHW feature maps.

It is the `ViTEncoder` of the MAE core itself (a subclass, not a container), so its parameter names are the
official ones (`patch_embed.proj`, `cls_token`, `pos_embed`, `blocks.N.*`, `norm`) and an official MAE or
our own pretraining checkpoint loads without renaming (`init_cfg=dict(type='Pretrained', checkpoint=...)`,
through `mae_transfer.checkpoint.load_weights`, which reads every supported format).

Two token layouts, picked by the options:

- MAE / BEiT style (no window attention, no rel-pos; mmseg UperNet, classification-like use): the cls token
  is kept in the sequence `x: [N, 1 + L, D]` exactly as in pretraining and dropped from the outputs.
- ViTDet style (`window_size > 0` or `use_rel_pos`): no cls token (its pos-embed entry is set aside as in
  ViTDet), tokens stay on their grid `x: [N, H, W, D]` and blocks use `WindowRelPosAttention`.
"""
import copy
from functools import partial
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn
from torch.utils.checkpoint import checkpoint

from ...registry import MODELS
from ..arch import get_arch
from ..layers.pos_embed import grid_tuple
from ..layers.beit_attention import BEiTRelPosAttention
from ..layers.vit import Attention, ViTEncoder
from ..layers.window_attention import WindowRelPosAttention


def _normalise_indices(indices: Sequence[int], depth: int, name: str) -> Tuple[int, ...]:
    """Turn possibly negative block indices into sorted non-negative ones, checking the range."""
    out = []
    for index in indices:
        if not -depth <= index < depth:
            raise ValueError(f'{name} {tuple(indices)} out of range for {depth} blocks')
        out.append(index % depth)
    return tuple(sorted(set(out)))


@MODELS.register_module()
class MAEViT(ViTEncoder, BaseModule):
    """Plain ViT backbone for detection, segmentation and pose, with ViTDet's window / rel-pos options.

    Args:
        arch: a size of `mae_transfer.models.arch.ARCHS` ('tiny', 'small', 'base', 'large', 'huge', ...).
        img_size: pretraining image size, an int or (h, w): the grid of `pos_embed`, which is resized
            (bicubic) to every input's grid on the fly.
        patch_size: patch side; the arch's (16, or 14 for huge) when left out.
        in_channels: image channels.
        embed_dim: overrides the arch's width.
        depth: overrides the arch's number of blocks.
        num_heads: overrides the arch's number of heads.
        mlp_ratio: MLP hidden width relative to the token width.
        qkv_bias: learn qkv biases (MAE: True).
        out_indices: blocks whose outputs are returned (negative counts from the end), each as an NCHW map
            [N, D, ceil(H / p), ceil(W / p)].
        final_norm: apply the encoder's final LayerNorm (`norm`) to the last block's output, as in MAE's
            `forward_features`; without it `norm` is kept (so checkpoints load) but frozen and unused.
        drop_path_rate: stochastic depth of the last block, rising linearly from 0 at the first.
        window_size: window side for ViTDet window attention (0: global attention everywhere).
        global_attn_indexes: blocks that attend globally when `window_size > 0` (ViTDet-B: (2, 5, 8, 11)).
        use_rel_pos: decomposed relative position embeddings in every block (zero-initialised).
        rel_pos_img_size: image size the global blocks' rel-pos tables are sized for (ViTDet: 1024);
            `img_size` when left out. Other input sizes interpolate the tables.
        use_cls_token: keep the cls token in the sequence. Left out: True for plain global attention (the
            pretraining computation), False with windows or rel-pos (ViTDet), where it must be False.
        rel_pos_impl: 'fold' or 'mask': how the rel-pos bias reaches scaled_dot_product_attention
            (see `vitdet_attention`).
        fused_attn: force (True) or avoid (False) scaled_dot_product_attention; None picks per input.
        with_cp: activation checkpointing per block (recompute in backward, less memory).
        frozen_stages: -1 freezes nothing; k >= 0 freezes the patch embedding, cls token and pos_embed, plus
            the first k blocks (and `norm` when k covers every block); frozen parts stay in eval mode.
        patch_padding: zero padding of the patch-embedding conv (ViTPose: 2); the grid stays ceil(H / p) x
            ceil(W / p) for padding < p / 2, but every patch sees a window shifted by the padding.
        add_cls_pos_to_patches: add the cls row of `pos_embed` to every patch token (ViTPose:
            `x + pos_embed[:, 1:] + pos_embed[:, :1]`); needs `use_cls_token=False` (ViTPose drops the token).
        init_cfg: mmengine init config; dict(type='Pretrained', checkpoint=PATH[, prefix=...][,
            checkpoint_grid=(h, w)]) loads an official MAE file, one of our pretraining checkpoints, a saved
            backbone or any other supported format (`mae_transfer.checkpoint.load_weights`).
        use_rel_pos_bias: BEiT-style relative position bias in every block (one zero-initialised table per
            block over the `img_size` patch grid plus the cls token's entries, resized for other grids;
            `layers/beit_attention.py`), as the MAE paper's ADE20K setting; needs the cls-token layout.
        layer_scale_init_value: learnable layer scale (`blocks.N.ls1.gamma` / `ls2.gamma`) starting at this
            value (mmseg's MAE config: 1.0); None: no layer scale.
        norm_eps: eps of every LayerNorm (MAE, timm, detectron2: 1e-6; mmdet's ViTDet project: mmcv's 1e-5).
    """

    def __init__(self, arch: str = 'base', img_size: Union[int, Tuple[int, int]] = 224,
                 patch_size: Optional[int] = None, in_channels: int = 3, embed_dim: Optional[int] = None,
                 depth: Optional[int] = None, num_heads: Optional[int] = None, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, out_indices: Sequence[int] = (-1, ), final_norm: bool = False,
                 drop_path_rate: float = 0.0, window_size: int = 0, global_attn_indexes: Sequence[int] = (),
                 use_rel_pos: bool = False, rel_pos_img_size: Optional[Union[int, Tuple[int, int]]] = None,
                 use_cls_token: Optional[bool] = None, rel_pos_impl: str = 'fold',
                 fused_attn: Optional[bool] = None, with_cp: bool = False, frozen_stages: int = -1,
                 use_rel_pos_bias: bool = False,
                 layer_scale_init_value: Optional[float] = None,
                 patch_padding: int = 0,
                 add_cls_pos_to_patches: bool = False,
                 norm_eps: float = 1e-6,
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        arch_dims = get_arch(arch)
        dims = dict(embed_dim=arch_dims.embed_dim, depth=arch_dims.depth, num_heads=arch_dims.num_heads,
                    patch_size=arch_dims.patch_size)
        for key, value in dict(embed_dim=embed_dim, depth=depth, num_heads=num_heads,
                               patch_size=patch_size).items():
            if value is not None:
                dims[key] = value
        grid_based = window_size > 0 or use_rel_pos
        if use_cls_token is None:
            use_cls_token = not grid_based
        if use_cls_token and grid_based:
            raise ValueError('window attention and rel-pos work on the token grid: use_cls_token must be False')
        attn_layer, attn_kwargs, block_attn_kwargs = Attention, dict(fused_attn=fused_attn), None
        if not use_cls_token:
            global_blocks = _normalise_indices(global_attn_indexes, dims['depth'], 'global_attn_indexes')
            rel_pos_size = grid_tuple(rel_pos_img_size if rel_pos_img_size is not None else img_size)
            rel_pos_grid = (rel_pos_size[0] // dims['patch_size'], rel_pos_size[1] // dims['patch_size'])
            attn_layer = WindowRelPosAttention
            attn_kwargs.update(use_rel_pos=use_rel_pos, rel_pos_grid=rel_pos_grid, rel_pos_impl=rel_pos_impl)
            block_attn_kwargs = [dict(window_size=0 if i in global_blocks else window_size)
                                 for i in range(dims['depth'])]
        if use_rel_pos_bias:  # BEiT-style bias over the cls token and the patch grid of img_size
            if not use_cls_token:
                raise ValueError('use_rel_pos_bias (BEiT style) works on the cls-token layout: use_cls_token must '
                                 'be True, and window attention / use_rel_pos off')
            bias_img_size = grid_tuple(img_size)
            attn_layer = BEiTRelPosAttention
            attn_kwargs.update(rel_pos_grid=(bias_img_size[0] // dims['patch_size'],
                                             bias_img_size[1] // dims['patch_size']))
        super().__init__(img_size=img_size, patch_size=dims['patch_size'], in_chans=in_channels,
                         embed_dim=dims['embed_dim'], depth=dims['depth'], num_heads=dims['num_heads'],
                         mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_path_rate=drop_path_rate,
                         norm_layer=partial(nn.LayerNorm, eps=norm_eps),
                         trainable_pos_embed=True, dynamic_img_size=True, attn_layer=attn_layer,
                         attn_kwargs=attn_kwargs, block_attn_kwargs=block_attn_kwargs,
                         layer_scale_init_value=layer_scale_init_value)
        self.use_rel_pos_bias = use_rel_pos_bias
        self.layer_scale_init_value = layer_scale_init_value
        if patch_padding:  # ViTPose's patch conv: kernel p, stride p, padding patch_padding
            if not 0 <= patch_padding < dims['patch_size'] / 2:
                raise ValueError(f'patch_padding must be in [0, {dims["patch_size"]} / 2), got {patch_padding}')
            self.patch_embed.proj.padding = (patch_padding, patch_padding)
        if add_cls_pos_to_patches and use_cls_token:
            raise ValueError('add_cls_pos_to_patches is for a backbone without cls token (use_cls_token=False)')
        self.patch_padding = patch_padding
        self.add_cls_pos_to_patches = add_cls_pos_to_patches
        # ViTEncoder.__init__ ran BaseModule.__init__ with no init_cfg (next in the MRO); set ours now
        self.init_cfg = copy.deepcopy(init_cfg)
        self.arch = arch
        self.depth = dims['depth']
        self.out_indices = _normalise_indices(out_indices, self.depth, 'out_indices')
        self.final_norm = final_norm
        self.use_cls_token = use_cls_token
        self.window_size = window_size
        self.use_rel_pos = use_rel_pos
        self.with_cp = with_cp
        self.frozen_stages = frozen_stages
        self.initialize_weights()  # MAE's initialisation; rel-pos tables stay zero
        # Parts the computation never uses keep their names (checkpoints load) but get no gradient, so that
        # DDP without find_unused_parameters does not wait for them.
        if not use_cls_token:
            self.cls_token.requires_grad_(False)
        if not final_norm:
            self.norm.requires_grad_(False)
        self._freeze_stages()

    # ------------------------------------------------------------------------------------------------ freezing

    def _frozen_modules(self) -> Tuple[nn.Module, ...]:
        """Modules put in eval mode by `frozen_stages`."""
        if self.frozen_stages < 0:
            return ()
        modules = [self.patch_embed, *self.blocks[:self.frozen_stages]]
        if self.frozen_stages >= self.depth:
            modules.append(self.norm)
        return tuple(modules)

    def _freeze_stages(self) -> None:
        """Stop gradients and switch to eval mode for the frozen part (no-op for frozen_stages=-1)."""
        if self.frozen_stages < 0:
            return
        self.cls_token.requires_grad_(False)
        self.pos_embed.requires_grad_(False)
        for module in self._frozen_modules():
            module.eval()
            module.requires_grad_(False)

    def train(self, mode: bool = True) -> 'MAEViT':
        """Set train/eval mode; frozen stages stay in eval mode (no dropout or drop path)."""
        super().train(mode)
        self._freeze_stages()
        return self

    # ------------------------------------------------------------------------------------------------ forward

    def _feature_map(self, x: torch.Tensor, grid_hw: Tuple[int, int]) -> torch.Tensor:
        """Tokens of either layout -> NCHW map [N, D, h, w] without the cls token."""
        if self.use_cls_token:
            tokens = x[:, 1:, :]  # tokens: [N, L, D]
            return tokens.transpose(1, 2).unflatten(2, grid_hw)  # [N, D, h, w]; no -1: exporters keep static sides
        return x.permute(0, 3, 1, 2).contiguous()  # x: [N, h, w, D] -> [N, D, h, w]

    def _run_block(self, block: nn.Module, x: torch.Tensor, attn_bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.with_cp and self.training and torch.is_grad_enabled():
            # non-reentrant checkpointing replays the RNG state, so drop path draws the same mask twice
            return checkpoint(block, x, attn_bias, use_reentrant=False)
        return block(x, attn_bias=attn_bias)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Feature maps of the blocks in `out_indices`.

        Args:
            x: images [N, C, H, W] of any size; sides that are not multiples of the patch are zero-padded at
                the bottom/right.

        Returns:
            tuple of [N, D, ceil(H / p), ceil(W / p)], one per index in `out_indices`.
        """
        n = x.shape[0]
        pad_h, pad_w = (-x.shape[-2]) % self.patch_size, (-x.shape[-1]) % self.patch_size
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))  # x: [N, C, H', W'], multiples of the patch
        grid_hw = (x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size)
        x = self.embed_patches(x)  # x: [N, L, D], pos_embed resized to grid_hw when needed
        if self.add_cls_pos_to_patches:
            x = x + self.pos_embed[:, :1, :]  # ViTPose: the cls row's position on every patch token
        if self.use_cls_token:
            x = self.prepend_cls_token(x)  # x: [N, 1 + L, D]
        else:
            x = x.reshape(n, grid_hw[0], grid_hw[1], self.embed_dim)  # x: [N, h, w, D]
        outs = []
        for index, block in enumerate(self.blocks[:self.out_indices[-1] + 1]):  # later blocks feed nothing
            bias = block.attn.relative_position_bias(grid_hw) if self.use_rel_pos_bias else None  # [1, h, L, L]
            x = self._run_block(block, x, bias)
            if index == self.depth - 1 and self.final_norm:
                x = self.norm(x)
            if index in self.out_indices:
                outs.append(self._feature_map(x, grid_hw))
        return tuple(outs)

    def extra_repr(self) -> str:
        return (f'arch={self.arch}, out_indices={self.out_indices}, window_size={self.window_size}, '
                f'use_rel_pos={self.use_rel_pos}, use_cls_token={self.use_cls_token}, with_cp={self.with_cp}, '
                f'frozen_stages={self.frozen_stages}')


__all__ = ['MAEViT']
