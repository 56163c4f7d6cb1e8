"""Masked autoencoder (He et al. 2021) with a ViT encoder and a light ViT decoder.

Method names follow the paper and the official `models_mae.py`: `patchify`, `unpatchify`, `random_masking`,
`forward_encoder`, `forward_decoder`, `forward_loss`. Parameter names are the official ones, so official
checkpoints load with no renaming (`mae_transfer.checkpoint.load_weights`, decoder included). Images may be
non-square; both sides must divide by the patch size.

Flow for N images and L = (H / p) * (W / p) patches, keeping L_keep = int(L * (1 - mask_ratio)):

    imgs [N, C, H, W] -> patch tokens + pos [N, L, D] -> keep a random subset [N, L_keep, D]
    -> cls + blocks + norm: latent [N, 1 + L_keep, D]
    -> decoder_embed [N, 1 + L_keep, Dd] -> + mask tokens, unshuffle [N, 1 + L, Dd] -> + decoder_pos_embed
    -> decoder blocks + norm -> decoder_pred, drop cls: pred [N, L, p * p * C]
    loss = mean over removed patches of the per-patch MSE against patchify(imgs) (optionally normalised).
"""
from typing import Any, Optional, Tuple, Union

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .arch import get_arch
from .layers.pos_embed import GridSize, get_2d_sincos_pos_embed
from .layers.vit import Block, NormLayer, ViTEncoder, default_norm_layer


def patchify(imgs: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into flattened patches, in the official layout (row, column, channel inside a patch).

    Args:
        imgs: [N, C, H, W] with H and W divisible by `patch_size`.
        patch_size: side of the square patches.

    Returns:
        [N, L, p * p * C], patches in row-major grid order.
    """
    n, c, img_h, img_w = imgs.shape
    p = patch_size
    if img_h % p or img_w % p:
        raise ValueError(f'image size {(img_h, img_w)} is not divisible by patch size {p}')
    h, w = img_h // p, img_w // p
    x = imgs.reshape(n, c, h, p, w, p)  # x: [N, C, h, p, w, p]
    x = x.permute(0, 2, 4, 3, 5, 1)  # x: [N, h, w, p, p, C]
    return x.reshape(n, h * w, p * p * c)  # [N, L, p*p*C]


def unpatchify(x: torch.Tensor, patch_size: int, grid_hw: GridSize) -> torch.Tensor:
    """Inverse of `patchify`.

    Args:
        x: [N, L, p * p * C] with L = grid_h * grid_w.
        patch_size: side of the square patches.
        grid_hw: (grid_h, grid_w), or an int for a square grid.

    Returns:
        [N, C, grid_h * p, grid_w * p].
    """
    h, w = (grid_hw, grid_hw) if isinstance(grid_hw, int) else tuple(grid_hw)
    n, length, dim = x.shape
    p = patch_size
    if length != h * w or dim % (p * p):
        raise ValueError(f'cannot unpatchify {tuple(x.shape)} to a {(h, w)} grid of {p}x{p} patches')
    c = dim // (p * p)
    x = x.reshape(n, h, w, p, p, c)  # x: [N, h, w, p, p, C]
    x = x.permute(0, 5, 1, 3, 2, 4)  # x: [N, C, h, p, w, p]
    return x.reshape(n, c, h * p, w * p)  # [N, C, H, W]


class MaskedAutoencoderViT(ViTEncoder):
    """MAE: a ViT encoder on the visible patches and a light decoder that predicts the removed ones.

    Args:
        img_size: input size, an int or (height, width); each side must divide by the patch size.
        patch_size: side of the square patches.
        in_chans: image channels.
        embed_dim: encoder width.
        depth: encoder blocks.
        num_heads: encoder attention heads.
        decoder_embed_dim: decoder width.
        decoder_depth: decoder blocks.
        decoder_num_heads: decoder attention heads.
        mlp_ratio: MLP hidden width relative to the token width (encoder and decoder).
        norm_layer: callable building a norm layer from a width; LayerNorm(eps=1e-6) when left out.
        norm_pix_loss: regress each patch's pixels normalised by that patch's mean and variance.
        drop_path_rate: stochastic depth of the encoder (the paper uses none for pretraining).
        qkv_bias: learn biases for the qkv projections.
        with_cp: activation checkpointing of the encoder blocks in training (less memory, about a third more
            compute; `mae-transfer plan` turns it on when a batch does not fit otherwise).
    """

    def __init__(self, img_size: Union[int, Tuple[int, int]] = 224, patch_size: int = 16, in_chans: int = 3,
                 embed_dim: int = 1024, depth: int = 24, num_heads: int = 16, decoder_embed_dim: int = 512,
                 decoder_depth: int = 8, decoder_num_heads: int = 16, mlp_ratio: float = 4.0,
                 norm_layer: Optional[NormLayer] = None, norm_pix_loss: bool = False,
                 drop_path_rate: float = 0.0, qkv_bias: bool = True, with_cp: bool = False) -> None:
        norm_layer = norm_layer or default_norm_layer
        super().__init__(img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim,
                         depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                         drop_path_rate=drop_path_rate, norm_layer=norm_layer)
        self.decoder_embed_dim = decoder_embed_dim
        self.norm_pix_loss = norm_pix_loss
        self.with_cp = with_cp
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim, bias=True)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, self.num_patches + 1, decoder_embed_dim),
                                              requires_grad=False)  # fixed sin-cos: [1, 1 + L, Dd]
        self.decoder_blocks = nn.ModuleList([
            Block(decoder_embed_dim, decoder_num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                  norm_layer=norm_layer)
            for _ in range(decoder_depth)
        ])
        self.decoder_norm = norm_layer(decoder_embed_dim)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size ** 2 * in_chans, bias=True)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Official initialisation: fixed sin-cos tables for both position embeddings, the patch-embed conv
        like a linear, cls and mask tokens normal(std 0.02), xavier-uniform linears, unit LayerNorms."""
        with torch.no_grad():
            self.decoder_pos_embed.copy_(
                get_2d_sincos_pos_embed(self.decoder_embed_dim, self.grid_size, cls_token=True)[None])
        nn.init.normal_(self.mask_token, std=0.02)
        super().initialize_weights()  # encoder pos_embed, patch embed, cls token, then every Linear/LayerNorm

    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] -> [N, L, p * p * C] with this model's patch size (see module-level `patchify`).

        Args:
            imgs: images whose sides divide by the patch size.
        """
        return patchify(imgs, self.patch_size)

    def unpatchify(self, x: torch.Tensor, grid_hw: Optional[GridSize] = None) -> torch.Tensor:
        """[N, L, p * p * C] -> [N, C, H, W].

        Args:
            x: flattened patches.
            grid_hw: (grid_h, grid_w) of the patches; this model's grid when left out.
        """
        return unpatchify(x, self.patch_size, self.grid_size if grid_hw is None else grid_hw)

    def random_masking(self, x: torch.Tensor, mask_ratio: float,
                       noise: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-sample random masking: keep the int(L * (1 - mask_ratio)) patches with the smallest noise.

        Args:
            x: patch tokens [N, L, D].
            mask_ratio: fraction of patches to remove.
            noise: optional [N, L] scores (uniform noise when left out); passing the same noise gives the
                same mask, and an increasing noise such as `arange(L)` keeps the first patches in order.

        Returns:
            x_masked [N, L_keep, D] (kept tokens in order of increasing noise), mask [N, L] with 1 for removed
            and 0 for kept patches, ids_restore [N, L] that puts shuffled tokens back in patch order.
        """
        n, length, dim = x.shape  # x: [N, L, D]
        len_keep = int(length * (1 - mask_ratio))
        if noise is None:
            noise = torch.rand(n, length, device=x.device)  # noise: [N, L] in [0, 1)
        elif noise.shape != (n, length):
            raise ValueError(f'noise must have shape {(n, length)}, got {tuple(noise.shape)}')
        else:
            noise = noise.to(x.device)
        ids_shuffle = torch.argsort(noise, dim=1)  # ids_shuffle: [N, L], ascending: small noise is kept
        ids_restore = torch.argsort(ids_shuffle, dim=1)  # ids_restore: [N, L]
        ids_keep = ids_shuffle[:, :len_keep]  # ids_keep: [N, L_keep]
        x_masked = torch.gather(x, dim=1, index=ids_keep.unsqueeze(-1).expand(-1, -1, dim))  # [N, L_keep, D]
        mask = torch.ones(n, length, device=x.device)  # mask: [N, L] float32, 0 is keep, 1 is remove
        mask[:, :len_keep] = 0
        mask = torch.gather(mask, dim=1, index=ids_restore)  # mask: [N, L] in patch order
        return x_masked, mask, ids_restore

    def forward_encoder(self, imgs: torch.Tensor, mask_ratio: float,
                        noise: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode the visible patches.

        Args:
            imgs: [N, C, H, W] at this model's img_size.
            mask_ratio: fraction of patches to remove.
            noise: optional [N, L] masking scores (see `random_masking`).

        Returns:
            latent [N, 1 + L_keep, D] (cls token first, normalised), mask [N, L], ids_restore [N, L].
        """
        x = self.embed_patches(imgs)  # x: [N, L, D]
        x, mask, ids_restore = self.random_masking(x, mask_ratio, noise)  # x: [N, L_keep, D]
        x = self.prepend_cls_token(x)  # x: [N, 1 + L_keep, D]
        for block in self.blocks:
            x = self._run_block(block, x)
        return self.norm(x), mask, ids_restore

    def _run_block(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.with_cp and self.training and torch.is_grad_enabled():
            # activation checkpointing: recompute the block in backward; non-reentrant replays the RNG state
            return checkpoint(block, x, use_reentrant=False)
        return block(x)

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """Predict the pixels of every patch from the visible latents and mask tokens.

        Args:
            latent: encoder output [N, 1 + L_keep, D].
            ids_restore: [N, L] from `random_masking`.

        Returns:
            pred [N, L, p * p * C] in patch order (cls token dropped).
        """
        x = self.decoder_embed(latent)  # x: [N, 1 + L_keep, Dd]
        n, _, dim = x.shape
        num_masked = ids_restore.shape[1] + 1 - x.shape[1]
        mask_tokens = self.mask_token.expand(n, num_masked, -1)  # mask_tokens: [N, L - L_keep, Dd]
        x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)  # x_: [N, L, Dd], shuffled order, no cls
        x_ = torch.gather(x_, dim=1, index=ids_restore.unsqueeze(-1).expand(-1, -1, dim))  # x_: [N, L, Dd]
        x = torch.cat([x[:, :1, :], x_], dim=1)  # x: [N, 1 + L, Dd], cls token back in front
        x = x + self.decoder_pos_embed
        for block in self.decoder_blocks:  # the light decoder: its activations are small, no checkpointing
            x = block(x)
        x = self.decoder_pred(self.decoder_norm(x))  # x: [N, 1 + L, p*p*C]
        return x[:, 1:, :]  # [N, L, p*p*C]

    def patch_targets(self, imgs: torch.Tensor) -> torch.Tensor:
        """The regression targets [N, L, p * p * C]: raw patches, or with `norm_pix_loss` each patch
        normalised by its own mean and (unbiased, as in the official code) variance, eps 1e-6.

        Args:
            imgs: [N, C, H, W].
        """
        target = self.patchify(imgs)  # target: [N, L, p*p*C]
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)  # mean: [N, L, 1]
            var = target.var(dim=-1, keepdim=True)  # var: [N, L, 1]
            target = (target - mean) / (var + 1.0e-6) ** 0.5
        return target

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error on the removed patches only.

        Args:
            imgs: [N, C, H, W].
            pred: [N, L, p * p * C].
            mask: [N, L], 1 for removed patches (the only ones that count), 0 for visible ones.

        Returns:
            scalar loss (float32); 0 when no patch is removed (mask_ratio 0).
        """
        target = self.patch_targets(imgs.float())  # target: [N, L, p*p*C]
        loss = (pred.float() - target) ** 2
        loss = loss.mean(dim=-1)  # loss: [N, L], mean loss per patch
        mask = mask.float()
        return (loss * mask).sum() / mask.sum().clamp(min=1.0)

    def forward(self, imgs: torch.Tensor, mask_ratio: float = 0.75,
                noise: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One MAE step.

        Args:
            imgs: [N, C, H, W].
            mask_ratio: fraction of patches to remove.
            noise: optional [N, L] masking scores for a deterministic mask.

        Returns:
            loss (scalar), pred [N, L, p * p * C], mask [N, L].
        """
        latent, mask, ids_restore = self.forward_encoder(imgs, mask_ratio, noise)
        pred = self.forward_decoder(latent, ids_restore)
        loss = self.forward_loss(imgs, pred, mask)
        return loss, pred, mask


# ----------------------------------------------------------------------------------------------------------
# Named factories: encoder dimensions from the arch table, the paper's decoder (tiny: a smaller one)
# ----------------------------------------------------------------------------------------------------------

def mae_vit(arch: str, decoder_embed_dim: int = 512, decoder_depth: int = 8, decoder_num_heads: int = 16,
            **kwargs: Any) -> MaskedAutoencoderViT:
    """MAE with the encoder of `ARCHS[arch]` and the given decoder.

    Args:
        arch: a key of `mae_transfer.models.arch.ARCHS`.
        decoder_embed_dim: decoder width (paper: 512).
        decoder_depth: decoder blocks (paper: 8).
        decoder_num_heads: decoder heads (paper: 16).
        **kwargs: `MaskedAutoencoderViT` options (img_size, norm_pix_loss, drop_path_rate, ...).
    """
    dims = get_arch(arch)
    return MaskedAutoencoderViT(patch_size=dims.patch_size, embed_dim=dims.embed_dim, depth=dims.depth,
                                num_heads=dims.num_heads, mlp_ratio=dims.mlp_ratio,
                                decoder_embed_dim=decoder_embed_dim, decoder_depth=decoder_depth,
                                decoder_num_heads=decoder_num_heads, **kwargs)


def mae_vit_tiny_patch16(decoder_embed_dim: int = 128, decoder_depth: int = 2, decoder_num_heads: int = 4,
                         **kwargs: Any) -> MaskedAutoencoderViT:
    """Tiny MAE for tests and CPU demos: encoder 192-d x 4 blocks x 3 heads, decoder 128-d x 2 blocks."""
    return mae_vit('tiny', decoder_embed_dim, decoder_depth, decoder_num_heads, **kwargs)


def mae_vit_small_patch16(decoder_embed_dim: int = 512, decoder_depth: int = 8, decoder_num_heads: int = 16,
                          **kwargs: Any) -> MaskedAutoencoderViT:
    """ViT-S/16 encoder (384-d x 12 blocks x 6 heads) with the standard MAE decoder."""
    return mae_vit('small', decoder_embed_dim, decoder_depth, decoder_num_heads, **kwargs)


def mae_vit_base_patch16(decoder_embed_dim: int = 512, decoder_depth: int = 8, decoder_num_heads: int = 16,
                         **kwargs: Any) -> MaskedAutoencoderViT:
    """ViT-B/16 encoder (768-d x 12 blocks x 12 heads) with the standard MAE decoder."""
    return mae_vit('base', decoder_embed_dim, decoder_depth, decoder_num_heads, **kwargs)


def mae_vit_large_patch16(decoder_embed_dim: int = 512, decoder_depth: int = 8, decoder_num_heads: int = 16,
                          **kwargs: Any) -> MaskedAutoencoderViT:
    """ViT-L/16 encoder (1024-d x 24 blocks x 16 heads) with the standard MAE decoder."""
    return mae_vit('large', decoder_embed_dim, decoder_depth, decoder_num_heads, **kwargs)


def mae_vit_huge_patch14(decoder_embed_dim: int = 512, decoder_depth: int = 8, decoder_num_heads: int = 16,
                         **kwargs: Any) -> MaskedAutoencoderViT:
    """ViT-H/14 encoder (1280-d x 32 blocks x 16 heads) with the standard MAE decoder."""
    return mae_vit('huge', decoder_embed_dim, decoder_depth, decoder_num_heads, **kwargs)


# The MAE of each size by arch name (what `MAEPretrainer(arch=...)` builds).
MAE_FACTORIES = {
    'tiny': mae_vit_tiny_patch16,
    'small': mae_vit_small_patch16,
    'base': mae_vit_base_patch16,
    'large': mae_vit_large_patch16,
    'huge': mae_vit_huge_patch14,
}
