"""MAE model core: shapes, masking, loss, patchify, sin-cos table, timm equivalence, training (loading
checkpoints: tests/checkpoint/test_adapt_and_report.py)."""
import math

import pytest
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer

from mae_transfer.checkpoint.formats import DECODER_NAMES
from mae_transfer.models import (Block, MaskedAutoencoderViT, ViTEncoder, get_2d_sincos_pos_embed,
                                 mae_vit_base_patch16, mae_vit_huge_patch14, mae_vit_large_patch16,
                                 mae_vit_small_patch16, mae_vit_tiny_patch16, patchify, resize_pos_embed, unpatchify)
from mae_transfer.models.layers.vit import explicit_attention, prefer_fused_attention


def tiny(img_size=64, seed=0, **kwargs) -> MaskedAutoencoderViT:
    torch.manual_seed(seed)
    return mae_vit_tiny_patch16(img_size=img_size, **kwargs)


def fixed_noise(n: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, length, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------------ shapes

@pytest.mark.parametrize('img_size', [64, (64, 96)])
def test_forward_shapes(img_size):
    model = tiny(img_size)
    h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
    length = (h // 16) * (w // 16)
    imgs = torch.randn(2, 3, h, w)
    latent, mask, ids_restore = model.forward_encoder(imgs, 0.75)
    len_keep = int(length * 0.25)
    assert latent.shape == (2, 1 + len_keep, 192)
    assert mask.shape == ids_restore.shape == (2, length)
    loss, pred, mask = model(imgs, mask_ratio=0.75)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert pred.shape == (2, length, 16 * 16 * 3)
    assert model.pos_embed.shape == (1, 1 + length, 192)
    assert model.decoder_pos_embed.shape == (1, 1 + length, 128)
    assert not model.pos_embed.requires_grad and not model.decoder_pos_embed.requires_grad


def test_parameter_names_and_init():
    model = tiny()
    names = set(model.state_dict())
    for name in ['patch_embed.proj.weight', 'cls_token', 'pos_embed', 'blocks.0.norm1.weight',
                 'blocks.0.attn.qkv.weight', 'blocks.0.attn.qkv.bias', 'blocks.0.attn.proj.weight',
                 'blocks.0.norm2.weight', 'blocks.0.mlp.fc1.weight', 'blocks.0.mlp.fc2.weight', 'norm.weight',
                 'decoder_embed.weight', 'mask_token', 'decoder_pos_embed', 'decoder_blocks.1.attn.qkv.weight',
                 'decoder_norm.weight', 'decoder_pred.weight']:
        assert name in names, name
    assert abs(model.cls_token.std().item() - 0.02) < 0.01
    assert abs(model.mask_token.std().item() - 0.02) < 0.01
    fc1 = model.blocks[0].mlp.fc1
    bound = math.sqrt(6.0 / (fc1.in_features + fc1.out_features))
    assert fc1.weight.abs().max() <= bound and fc1.weight.abs().max() > 0.9 * bound
    assert torch.all(fc1.bias == 0) and torch.all(model.norm.weight == 1) and torch.all(model.norm.bias == 0)
    proj = model.patch_embed.proj.weight  # xavier on [D, C*p*p]
    bound = math.sqrt(6.0 / (proj.shape[0] + proj[0].numel()))
    assert proj.abs().max() <= bound and proj.abs().max() > 0.9 * bound


@pytest.mark.parametrize('factory, timm_dims', [
    (mae_vit_small_patch16, dict(patch_size=16, embed_dim=384, depth=12, num_heads=6)),
    (mae_vit_base_patch16, dict(patch_size=16, embed_dim=768, depth=12, num_heads=12)),
    (mae_vit_large_patch16, dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16)),
    (mae_vit_huge_patch14, dict(patch_size=14, embed_dim=1280, depth=32, num_heads=16)),
])
def test_factories_match_timm_architectures(factory, timm_dims):
    with torch.device('meta'):  # shapes only, no memory
        model = factory()
        reference = VisionTransformer(img_size=224, num_classes=0, global_pool='token', **timm_dims)
    encoder = {k: v.shape for k, v in model.state_dict().items() if not k.startswith(DECODER_NAMES)}
    assert encoder == {k: v.shape for k, v in reference.state_dict().items()}
    assert len(model.decoder_blocks) == 8 and model.decoder_embed.out_features == 512
    assert model.decoder_blocks[0].attn.num_heads == 16
    assert model.decoder_pred.out_features == timm_dims['patch_size'] ** 2 * 3


def test_factory_kwargs_pass_through():
    model = tiny(img_size=(32, 48), norm_pix_loss=True, drop_path_rate=0.1, decoder_depth=1)
    assert model.grid_size == (2, 3) and model.norm_pix_loss and len(model.decoder_blocks) == 1
    assert model.blocks[-1].drop_path.drop_prob == pytest.approx(0.1)


# ------------------------------------------------------------------------------------------------ masking

@pytest.mark.parametrize('mask_ratio', [0.0, 0.5, 0.75, 0.9])
def test_random_masking_invariants(mask_ratio):
    model = tiny()
    n, length, dim = 4, 16, 5
    x = torch.arange(length, dtype=torch.float32)[None, :, None].expand(n, length, dim)  # token l holds l
    x_masked, mask, ids_restore = model.random_masking(x, mask_ratio)
    len_keep = int(length * (1 - mask_ratio))
    assert x_masked.shape == (n, len_keep, dim)
    assert torch.all((mask == 0).sum(dim=1) == len_keep)  # exactly len_keep visible per sample
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert torch.all(torch.sort(ids_restore, dim=1).values == torch.arange(length))  # a permutation
    kept = x_masked[..., 0].long()  # indices of the kept patches
    assert torch.all(torch.gather(mask, 1, kept) == 0)
    # unshuffle like the decoder: kept tokens + placeholders, gathered with ids_restore, are back in place
    placeholders = torch.full((n, length - len_keep, dim), -1.0)
    restored = torch.gather(torch.cat([x_masked, placeholders], dim=1), 1,
                            ids_restore[..., None].expand(-1, -1, dim))
    expected = torch.where(mask[..., None] == 0, x, torch.full_like(x, -1.0))
    assert torch.equal(restored, expected)


def test_masking_noise_is_deterministic():
    model = tiny()
    x = torch.randn(3, 16, 8)
    noise = fixed_noise(3, 16)
    first = model.random_masking(x, 0.75, noise=noise)
    second = model.random_masking(x, 0.75, noise=noise.clone())
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    # the smallest noise is kept
    assert torch.equal(first[1] == 0, noise <= noise.sort(dim=1).values[:, 3:4])
    # without noise, samples get different masks
    _, mask, _ = model.random_masking(torch.randn(8, 16, 8), 0.75)
    assert len({tuple(row.tolist()) for row in mask}) > 1
    with pytest.raises(ValueError):
        model.random_masking(x, 0.75, noise=torch.rand(3, 15))


# ------------------------------------------------------------------------------------------------ loss

@pytest.mark.parametrize('norm_pix_loss', [False, True])
def test_loss_ignores_visible_patches(norm_pix_loss):
    model = tiny(norm_pix_loss=norm_pix_loss)
    imgs = torch.randn(2, 3, 64, 64)
    noise = fixed_noise(2, 16)
    with torch.no_grad():
        loss, pred, mask = model(imgs, 0.75, noise=noise)
    visible = (mask == 0)[..., None]  # [N, L, 1]
    patches = patchify(imgs, 16)
    changed = unpatchify(torch.where(visible, patches * 5 + 3, patches), 16, (4, 4))
    assert not torch.equal(changed, imgs)
    assert model.forward_loss(changed, pred, mask) == pytest.approx(loss.item(), rel=1e-6)
    # and the gradient reaches removed patches only
    pred = pred.clone().requires_grad_(True)
    model.forward_loss(imgs, pred, mask).backward()
    assert torch.all(pred.grad[mask == 0] == 0) and torch.any(pred.grad[mask == 1] != 0)


def test_norm_pix_loss_target_and_switch():
    imgs = torch.rand(2, 3, 64, 64) * 4 + 1
    plain, normed = tiny(), tiny(norm_pix_loss=True)
    pred = torch.randn(2, 16, 768)
    mask = (fixed_noise(2, 16) > 0.3).float()
    target = patchify(imgs, 16)
    manual = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
    assert torch.allclose(normed.patch_targets(imgs), manual, atol=1e-5)
    assert torch.allclose(manual.mean(-1), torch.zeros(2, 16), atol=1e-5)
    manual_loss = (((pred - manual) ** 2).mean(-1) * mask).sum() / mask.sum()
    plain_loss = (((pred - target) ** 2).mean(-1) * mask).sum() / mask.sum()
    assert normed.forward_loss(imgs, pred, mask).item() == pytest.approx(manual_loss.item(), rel=1e-5)
    assert plain.forward_loss(imgs, pred, mask).item() == pytest.approx(plain_loss.item(), rel=1e-5)
    assert abs(manual_loss - plain_loss) > 0.1


# ------------------------------------------------------------------------------------------------ patchify

@pytest.mark.parametrize('patch, height, width, chans', [(16, 64, 64, 3), (16, 32, 80, 3), (14, 28, 42, 3),
                                                         (8, 24, 16, 1)])
def test_patchify_round_trip(patch, height, width, chans):
    imgs = torch.randn(2, chans, height, width)
    grid = (height // patch, width // patch)
    x = patchify(imgs, patch)
    assert x.shape == (2, grid[0] * grid[1], patch * patch * chans)
    assert torch.equal(unpatchify(x, patch, grid), imgs)
    # official layout: patch (i, j) is the (p, q, c) flattening of that image crop
    i, j = grid[0] - 1, grid[1] // 2
    crop = imgs[1, :, i * patch:(i + 1) * patch, j * patch:(j + 1) * patch]
    assert torch.equal(x[1, i * grid[1] + j], crop.permute(1, 2, 0).reshape(-1))


def test_model_patchify_patch14_non_square():
    torch.manual_seed(0)
    model = MaskedAutoencoderViT(img_size=(28, 42), patch_size=14, embed_dim=64, depth=1, num_heads=2,
                                 decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2)
    imgs = torch.randn(2, 3, 28, 42)
    assert torch.equal(model.unpatchify(model.patchify(imgs)), imgs)
    loss, pred, mask = model(imgs, 0.5)
    assert pred.shape == (2, 6, 14 * 14 * 3) and mask.sum() == 2 * 3
    with pytest.raises(ValueError):
        patchify(torch.randn(1, 3, 30, 42), 14)


# ------------------------------------------------------------------------------------------------ pos embed

@pytest.mark.parametrize('grid', [(3, 5), (4, 4)])
def test_sincos_table_closed_form(grid):
    dim = 16
    table = get_2d_sincos_pos_embed(dim, grid, cls_token=True)
    assert table.shape == (1 + grid[0] * grid[1], dim) and table.dtype == torch.float32
    assert torch.all(table[0] == 0)
    quarter = dim // 4
    for y in range(grid[0]):
        for x in range(grid[1]):
            row = table[1 + y * grid[1] + x]
            for k in range(quarter):
                omega = 1.0 / 10000 ** (k / quarter)
                expected = [math.sin(x * omega), math.cos(x * omega), math.sin(y * omega), math.cos(y * omega)]
                got = [row[k], row[quarter + k], row[2 * quarter + k], row[3 * quarter + k]]
                assert [float(g) for g in got] == pytest.approx(expected, abs=1e-6)
    assert torch.equal(get_2d_sincos_pos_embed(dim, grid), table[1:])


def test_resize_pos_embed():
    pos = get_2d_sincos_pos_embed(32, (4, 6), cls_token=True)[None]  # [1, 25, 32]
    resized = resize_pos_embed(pos, (8, 12), old_grid=(4, 6))
    assert resized.shape == (1, 1 + 96, 32)
    assert torch.equal(resized[:, :1], pos[:, :1])
    assert resize_pos_embed(pos, (4, 6), old_grid=(4, 6)) is pos
    reference = torch.nn.functional.interpolate(pos[:, 1:].reshape(1, 4, 6, 32).permute(0, 3, 1, 2),
                                                size=(8, 12), mode='bicubic', align_corners=False)
    assert torch.allclose(resized[:, 1:], reference.permute(0, 2, 3, 1).reshape(1, 96, 32), atol=1e-6)
    with pytest.raises(ValueError):
        resize_pos_embed(pos, (8, 8))  # 24 tokens: not a square, old_grid needed


# ------------------------------------------------------------------------------------------------ timm equivalence

@pytest.mark.parametrize('img_size', [64, (48, 80)])
def test_encoder_matches_timm_vision_transformer(img_size):
    model = tiny(img_size).eval()
    reference = VisionTransformer(img_size=img_size, patch_size=16, embed_dim=192, depth=4, num_heads=3,
                                  mlp_ratio=4.0, qkv_bias=True, class_token=True, global_pool='token',
                                  num_classes=0).eval()
    encoder_state = {k: v for k, v in model.state_dict().items() if not k.startswith(DECODER_NAMES)}
    reference.load_state_dict(encoder_state, strict=True)
    h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
    imgs = torch.randn(2, 3, h, w)
    length = model.num_patches
    keep_order = torch.arange(length, dtype=torch.float32).expand(2, length)
    with torch.no_grad():
        expected = reference.forward_features(imgs)
        latent, mask, ids_restore = model.forward_encoder(imgs, 0.0, noise=keep_order)
        whole = model.forward_features(imgs)
    assert torch.all(mask == 0) and torch.equal(ids_restore, keep_order.long())
    assert torch.allclose(latent, expected, atol=1e-5)
    assert torch.allclose(whole, expected, atol=1e-5)


def test_attention_bias_and_dynamic_size():
    torch.manual_seed(0)
    block = Block(32, num_heads=4).eval()
    x = torch.randn(2, 5, 32)
    assert torch.allclose(block(x, attn_bias=torch.zeros(1, 4, 5, 5)), block(x), atol=1e-6)
    # -inf on every key but the token itself turns attention into a per-token projection
    only_self = torch.full((5, 5), float('-inf')).fill_diagonal_(0.0)
    out = block.attn(x, attn_bias=only_self)
    v = block.attn.qkv(x)[..., 64:]  # the value part of qkv: [N, L, D]
    assert torch.allclose(out, block.attn.proj(v), atol=1e-5)
    encoder = ViTEncoder(img_size=32, patch_size=16, embed_dim=32, depth=1, num_heads=2, dynamic_img_size=True)
    encoder.initialize_weights()
    assert encoder(torch.randn(1, 3, 48, 64)).shape == (1, 1 + 12, 32)


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_explicit_and_fused_attention_agree(dtype):
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 4, 7, 16).to(dtype).unbind(0)  # each: [N, h, L, d]
    bias = torch.randn(1, 4, 7, 7).to(dtype)
    keep = torch.rand(7, 7) > 0.3
    keep.fill_diagonal_(True)  # every query keeps at least one key
    tolerance = 1e-5 if dtype == torch.float32 else 3e-2
    for attn_bias in (None, bias, keep):
        fused = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias)
        explicit = explicit_attention(q, k, v, attn_bias)
        assert torch.allclose(fused.float(), explicit.float(), atol=tolerance), attn_bias
    assert prefer_fused_attention(q) == (dtype == torch.float32)  # CPU: explicit matmuls are faster in bf16
    block = Block(32, num_heads=4, attn_kwargs=dict(fused_attn=False)).eval()
    reference = Block(32, num_heads=4, attn_kwargs=dict(fused_attn=True)).eval()
    reference.load_state_dict(block.state_dict())
    x = torch.randn(2, 5, 32)
    assert torch.allclose(block(x), reference(x), atol=1e-5)


# ------------------------------------------------------------------------------------------------ training

def test_loss_falls_on_a_fixed_batch():
    model = tiny(img_size=32, seed=0)
    imgs = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3,
                                  betas=(0.9, 0.95), weight_decay=0.05)
    torch.manual_seed(0)
    losses = []
    for _ in range(30):
        loss, _, _ = model(imgs, mask_ratio=0.5)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5, losses
