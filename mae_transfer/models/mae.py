"""Masked autoencoder (He et al. 2021) with a ViT encoder and a light ViT decoder.

Method names follow the paper and the official `models_mae.py`: `patchify`, `unpatchify`, `random_masking`,
`forward_encoder`, `forward_decoder`, `forward_loss`. Parameter names are the official ones, so official
checkpoints load with no renaming (`load_mae_checkpoint`). Images may be non-square; both sides must divide
by the patch size.

Flow for N images and L = (H / p) * (W / p) patches, keeping L_keep = int(L * (1 - mask_ratio)):

    imgs [N, C, H, W] -> patch tokens + pos [N, L, D] -> keep a random subset [N, L_keep, D]
    -> cls + blocks + norm: latent [N, 1 + L_keep, D]
    -> decoder_embed [N, 1 + L_keep, Dd] -> + mask tokens, unshuffle [N, 1 + L, Dd] -> + decoder_pos_embed
    -> decoder blocks + norm -> decoder_pred, drop cls: pred [N, L, p * p * C]
    loss = mean over removed patches of the per-patch MSE against patchify(imgs) (optionally normalised).
"""
import logging
import os
from dataclasses import dataclass, field
from typing import Any, List, Mapping, Optional, Tuple, Union

import torch
from mmengine.logging import print_log
from torch import nn

from ..engine.safe_load import safe_torch_load
from .arch import get_arch
from .layers.pos_embed import GridSize, get_2d_sincos_pos_embed, grid_tuple, resize_pos_embed
from .pretrained import DECODER_KEY_PREFIXES, raw_state_dict, strip_wrapper_prefixes
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
    """

    def __init__(self, img_size: Union[int, Tuple[int, int]] = 224, patch_size: int = 16, in_chans: int = 3,
                 embed_dim: int = 1024, depth: int = 24, num_heads: int = 16, decoder_embed_dim: int = 512,
                 decoder_depth: int = 8, decoder_num_heads: int = 16, mlp_ratio: float = 4.0,
                 norm_layer: Optional[NormLayer] = None, norm_pix_loss: bool = False,
                 drop_path_rate: float = 0.0, qkv_bias: bool = True) -> None:
        norm_layer = norm_layer or default_norm_layer
        super().__init__(img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim,
                         depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                         drop_path_rate=drop_path_rate, norm_layer=norm_layer)
        self.decoder_embed_dim = decoder_embed_dim
        self.norm_pix_loss = norm_pix_loss
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
            x = block(x)
        return self.norm(x), mask, ids_restore

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
        for block in self.decoder_blocks:
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

    def load_official_checkpoint(self, checkpoint: Union[str, os.PathLike, Mapping[str, Any]],
                                 strict: bool = False,
                                 checkpoint_grid: Optional[GridSize] = None) -> 'CheckpointLoadResult':
        """Load an official MAE checkpoint; see `load_mae_checkpoint`.

        Args:
            checkpoint: path, or an already loaded checkpoint / state dict.
            strict: raise when keys other than the expected decoder keys are missing or unexpected.
            checkpoint_grid: patch grid of the checkpoint's pos_embed; inferred as square when left out.
        """
        return load_mae_checkpoint(self, checkpoint, strict=strict, checkpoint_grid=checkpoint_grid)


# ----------------------------------------------------------------------------------------------------------
# Official checkpoints
# ----------------------------------------------------------------------------------------------------------

@dataclass
class CheckpointLoadResult:
    """What `load_mae_checkpoint` did.

    Attributes:
        loaded_keys: model keys filled from the checkpoint.
        missing_keys: model keys the checkpoint lacks that it should have had (a problem).
        expected_missing_keys: decoder / mask-token keys absent from an encoder-only checkpoint
            (`mae_pretrain_vit_*.pth`); they keep their fresh initialisation.
        unexpected_keys: checkpoint keys the model has no place for (a problem).
        ignored_keys: decoder keys of a full checkpoint loaded into an encoder without decoder.
        resized_keys: keys resized to the model's grid (`pos_embed`).
        recomputed_keys: fixed sin-cos tables of another grid that were skipped and kept as recomputed
            for the model's grid (`decoder_pos_embed`).
        encoder_only: the checkpoint holds no decoder keys.
    """
    loaded_keys: List[str] = field(default_factory=list)
    missing_keys: List[str] = field(default_factory=list)
    expected_missing_keys: List[str] = field(default_factory=list)
    unexpected_keys: List[str] = field(default_factory=list)
    ignored_keys: List[str] = field(default_factory=list)
    resized_keys: List[str] = field(default_factory=list)
    recomputed_keys: List[str] = field(default_factory=list)
    encoder_only: bool = False

    @property
    def ok(self) -> bool:
        """True when nothing is missing or unexpected beyond what the checkpoint kind explains."""
        return not self.missing_keys and not self.unexpected_keys


def _is_decoder_key(key: str) -> bool:
    return key.startswith(DECODER_KEY_PREFIXES)


def load_mae_checkpoint(model: ViTEncoder, checkpoint: Union[str, os.PathLike, Mapping[str, Any]],
                        strict: bool = False, checkpoint_grid: Optional[GridSize] = None) -> CheckpointLoadResult:
    """Load an official MAE checkpoint (or any state dict in the official key scheme) without renaming.

    Encoder-only files (`mae_pretrain_vit_*.pth`) leave the decoder as initialised and say so; full files
    (`*_full.pth`, `*_visualize.pth`) fill the decoder too. `pos_embed` is resized (bicubic) when the
    checkpoint's grid differs from the model's; `decoder_pos_embed` of another grid is skipped, since the
    model's own fixed sin-cos table for its grid is what the decoder expects. Files are read with
    `torch.load(weights_only=True)`; the `argparse.Namespace` of official files is allowlisted on import of
    `mae_transfer`.

    Args:
        model: an `MaskedAutoencoderViT` or a plain `ViTEncoder`.
        checkpoint: path, or an already loaded checkpoint / state dict.
        strict: raise `RuntimeError` when `missing_keys` or `unexpected_keys` of the result are not empty.
        checkpoint_grid: patch grid of the checkpoint's pos_embed; inferred as square when left out.

    Returns:
        a `CheckpointLoadResult`; its content is also logged (warnings for real problems).
    """
    source = os.fspath(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else 'the given state dict'
    if isinstance(checkpoint, (str, os.PathLike)):
        checkpoint = safe_torch_load(os.fspath(checkpoint), map_location='cpu')
    # Official files, bare state dicts, and ours (mmengine `state_dict` with the MAEPretrainer's `mae.` prefix).
    state_dict = strip_wrapper_prefixes(raw_state_dict(checkpoint), dropped={})
    own_state = model.state_dict()
    result = CheckpointLoadResult(encoder_only=not any(_is_decoder_key(k) for k in state_dict))

    other_grid = checkpoint_grid is not None and grid_tuple(checkpoint_grid) != model.grid_size
    if 'pos_embed' in state_dict and 'pos_embed' in own_state:
        pos_embed = state_dict['pos_embed']  # pos_embed: [1, 1 + L_ckpt, D]
        if pos_embed.shape != own_state['pos_embed'].shape or other_grid:
            try:
                state_dict['pos_embed'] = resize_pos_embed(pos_embed, model.grid_size, old_grid=checkpoint_grid,
                                                           num_prefix_tokens=model.num_prefix_tokens)
            except ValueError as error:
                raise ValueError(f'MAE checkpoint {source}: cannot resize pos_embed {tuple(pos_embed.shape)} to '
                                 f'the grid {model.grid_size} ({error}); pass checkpoint_grid=(h, w)') from error
            result.resized_keys.append('pos_embed')
            print_log(f'MAE checkpoint {source}: pos_embed resized from {tuple(pos_embed.shape)} to '
                      f'{tuple(state_dict["pos_embed"].shape)} (grid {model.grid_size}).', logger='current')
    if 'decoder_pos_embed' in state_dict and 'decoder_pos_embed' in own_state:
        if state_dict['decoder_pos_embed'].shape != own_state['decoder_pos_embed'].shape or other_grid:
            del state_dict['decoder_pos_embed']
            result.recomputed_keys.append('decoder_pos_embed')

    mismatched = [f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own_state[k].shape)}'
                  for k, v in state_dict.items() if k in own_state and v.shape != own_state[k].shape]
    if mismatched:
        raise ValueError(f'MAE checkpoint {source} does not fit this model (another size?):\n  '
                         + '\n  '.join(mismatched))

    incompatible = model.load_state_dict(state_dict, strict=False)
    model_has_decoder = any(_is_decoder_key(k) for k in own_state)
    for key in incompatible.missing_keys:
        if key in result.recomputed_keys:
            continue
        if result.encoder_only and _is_decoder_key(key):
            result.expected_missing_keys.append(key)
        else:
            result.missing_keys.append(key)
    for key in incompatible.unexpected_keys:
        if not model_has_decoder and _is_decoder_key(key):
            result.ignored_keys.append(key)
        else:
            result.unexpected_keys.append(key)
    result.loaded_keys = [k for k in state_dict if k in own_state]
    _log_result(result, source, checkpoint, model)
    if strict and not result.ok:
        raise RuntimeError(f'MAE checkpoint {source} does not match the model: missing {result.missing_keys}, '
                           f'unexpected {result.unexpected_keys}')
    return result


def _log_result(result: CheckpointLoadResult, source: str, checkpoint: Mapping[str, Any],
                model: nn.Module) -> None:
    """Say what was loaded; real problems are warnings, expected gaps are info."""
    kind = 'encoder-only' if result.encoder_only else 'full (encoder + decoder)'
    args = checkpoint.get('args') if isinstance(checkpoint, Mapping) else None
    described = f' (trained as {getattr(args, "model", "?")})' if args is not None else ''
    print_log(f'MAE checkpoint {source}{described}: {kind}, {len(result.loaded_keys)} tensors loaded.',
              logger='current')
    if result.expected_missing_keys:
        print_log(f'Encoder-only checkpoint: {len(result.expected_missing_keys)} decoder keys are not in the '
                  f'file, as expected; the decoder keeps its fresh initialisation: '
                  f'{result.expected_missing_keys}', logger='current')
    if result.ignored_keys:
        print_log(f'Ignored {len(result.ignored_keys)} decoder keys (the model has no decoder): '
                  f'{result.ignored_keys}', logger='current')
    if result.recomputed_keys:
        print_log(f'Kept the recomputed sin-cos table for the model grid instead of the checkpoint\'s: '
                  f'{result.recomputed_keys}', logger='current')
    if result.missing_keys:
        print_log(f'Missing keys (not in the checkpoint, left as initialised): {result.missing_keys}',
                  logger='current', level=logging.WARNING)
    if result.unexpected_keys:
        print_log(f'Unexpected keys (in the checkpoint, not in the model, ignored): {result.unexpected_keys}',
                  logger='current', level=logging.WARNING)
    trained_norm_pix = getattr(args, 'norm_pix_loss', None)
    model_norm_pix = getattr(model, 'norm_pix_loss', None)
    if trained_norm_pix is not None and model_norm_pix is not None and trained_norm_pix != model_norm_pix:
        print_log(f'The checkpoint was trained with norm_pix_loss={trained_norm_pix} but the model has '
                  f'norm_pix_loss={model_norm_pix}: reconstructions will be on another scale.',
                  logger='current', level=logging.WARNING)


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
