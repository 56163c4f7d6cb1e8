"""MAEViT backbone, ViTDet attention, checkpoint loading, SimpleFPN, and the mmdet / mmseg models built on them."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mae_transfer  # noqa: F401  (allowlists argparse.Namespace for torch.load)
from mae_transfer.checkpoint import load_weights
from mae_transfer.models import (ARCHS, MAE_FACTORIES, LayerNorm2d, MAEViT, SimpleFPN, WindowRelPosAttention,
                                 mae_vit_tiny_patch16, resize_pos_embed)
from mae_transfer.models.layers.window_attention import get_rel_pos


def tiny_backbone(seed: int = 0, **kwargs) -> MAEViT:
    torch.manual_seed(seed)
    return MAEViT(arch='tiny', img_size=64, **kwargs)


def vitdet_tiny(seed: int = 0, **kwargs) -> MAEViT:
    """Tiny ViTDet-style backbone: windows of 3 (grids of 4-6 tokens need padding), global block 1, rel-pos."""
    options = dict(window_size=3, global_attn_indexes=(1, ), use_rel_pos=True)
    return tiny_backbone(seed, **{**options, **kwargs})


def randomise_rel_pos(model: torch.nn.Module, seed: int = 1) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if 'rel_pos' in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)


# -------------------------------------------------------------------------------------------- shapes, sizes

@pytest.mark.parametrize('arch', ['tiny', 'small', 'base'])
def test_arch_table_drives_mae_factories_and_backbone(arch):
    mae = MAE_FACTORIES[arch](img_size=32)
    backbone = MAEViT(arch=arch, img_size=32)
    dims = ARCHS[arch]
    expected = (dims.embed_dim, dims.depth, dims.num_heads, dims.patch_size)
    assert (mae.embed_dim, len(mae.blocks), mae.blocks[0].attn.num_heads, mae.patch_size) == expected
    assert (backbone.embed_dim, len(backbone.blocks), backbone.blocks[0].attn.num_heads,
            backbone.patch_size) == expected


@pytest.mark.parametrize('final_norm', [False, True])
def test_output_shapes_strides_and_final_norm(final_norm):
    model = tiny_backbone(out_indices=(0, 2, -1), final_norm=final_norm).eval()
    assert model.out_indices == (0, 2, 3)
    outs = model(torch.randn(2, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(2, 192, 4, 6)] * 3  # stride 16, no cls token
    assert model.norm.weight.requires_grad == final_norm
    last = outs[-1].permute(0, 2, 3, 1)  # [N, h, w, D]
    normalised = torch.allclose(last.mean(-1), torch.zeros(()), atol=1e-4)
    assert normalised == final_norm
    names = set(model.state_dict())
    assert {'patch_embed.proj.weight', 'cls_token', 'pos_embed', 'blocks.3.attn.qkv.weight', 'norm.weight'} <= names
    assert model.pos_embed.requires_grad  # learnt in fine-tuning, as in ViTDet / MAE fine-tune


def test_any_input_size_is_padded_and_pos_embed_resized():
    model = tiny_backbone(out_indices=(-1, )).eval()
    x = torch.randn(1, 3, 50, 70)  # neither side a multiple of 16
    (out, ) = model(x)
    assert out.shape == (1, 192, 4, 5)
    (padded, ) = model(F.pad(x, (0, 10, 0, 14)))  # the same image zero-padded to 64 x 80 by hand
    assert torch.allclose(out, padded, atol=1e-5)
    # the 4 x 5 grid uses the pretraining (4 x 4) pos_embed resized bicubically, cls entry kept aside
    expected = resize_pos_embed(model.pos_embed, (4, 5), old_grid=(4, 4))
    assert torch.equal(model._pos_embed_for((4, 5)), expected)


def test_features_equal_mae_forward_features():
    mae = mae_vit_tiny_patch16(img_size=(64, 96)).eval()
    backbone = MAEViT(arch='tiny', img_size=(64, 96), final_norm=True, out_indices=(-1, )).eval()
    report = load_weights(backbone, {'model': mae.state_dict()})
    assert report.ok and not report.expected_missing_keys
    imgs = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        (feature, ) = backbone(imgs)
        tokens = mae.forward_features(imgs)[:, 1:, :]  # [N, L, D] without cls
        latent, _, _ = mae.forward_encoder(imgs, 0.0, noise=torch.arange(24.).expand(2, -1))  # kept in order
    expected = tokens.transpose(1, 2).reshape(2, 192, 4, 6)
    assert torch.allclose(feature, expected, atol=1e-5)
    assert torch.allclose(latent[:, 1:], tokens, atol=1e-5)


# ---------------------------------------------------------------------------------- window + rel-pos attention

def reference_window_rel_pos_attention(attn: WindowRelPosAttention, x: torch.Tensor) -> torch.Tensor:
    """ViTDet's computation written out: pad, loop over windows, explicit softmax with the gathered bias."""
    n, grid_h, grid_w, dim = x.shape
    ws, heads, hd = attn.window_size, attn.num_heads, attn.head_dim
    pad_h, pad_w = (-grid_h) % ws, (-grid_w) % ws
    xp = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
    out = torch.zeros_like(xp)
    rows, cols = torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing='ij')
    rows, cols = rows.reshape(-1), cols.reshape(-1)  # position of each token of a window: [ws*ws]
    resized_h = F.interpolate(attn.rel_pos_h.t()[None], size=2 * ws - 1, mode='linear')[0].t()
    resized_w = F.interpolate(attn.rel_pos_w.t()[None], size=2 * ws - 1, mode='linear')[0].t()
    bias_h = resized_h[rows[:, None] - rows[None, :] + ws - 1]  # [L, L, hd]: embedding of each (query, key) pair
    bias_w = resized_w[cols[:, None] - cols[None, :] + ws - 1]
    for top in range(0, xp.shape[1], ws):
        for left in range(0, xp.shape[2], ws):
            window = xp[:, top:top + ws, left:left + ws, :].reshape(n, ws * ws, dim)
            q, k, v = attn.qkv(window).reshape(n, ws * ws, 3, heads, hd).permute(2, 0, 3, 1, 4)
            logits = (q @ k.transpose(-2, -1)) * hd ** -0.5  # [N, heads, L, L]
            logits = logits + (q[:, :, :, None, :] * (bias_h + bias_w)).sum(-1)
            o = (logits.softmax(-1) @ v).transpose(1, 2).reshape(n, ws, ws, dim)
            out[:, top:top + ws, left:left + ws, :] = o
    return attn.proj(out[:, :grid_h, :grid_w, :])


@pytest.mark.parametrize('impl,fused', [('fold', None), ('mask', None), ('fold', False)])
def test_window_rel_pos_attention_equals_reference(impl, fused):
    torch.manual_seed(0)
    # tables sized for windows of 3, run with windows of 4: interpolated; grid 5 x 7 is padded to 8 x 8
    attn = WindowRelPosAttention(32, num_heads=4, window_size=3, use_rel_pos=True, rel_pos_impl=impl,
                                 fused_attn=fused)
    randomise_rel_pos(attn)
    attn.window_size = 4
    x = torch.randn(2, 5, 7, 32)
    with torch.no_grad():
        assert torch.allclose(attn(x), reference_window_rel_pos_attention(attn, x), atol=1e-5)


def test_global_grid_attention_equals_plain_attention():
    """No window, no rel-pos: the grid path is the plain attention on the flattened tokens."""
    torch.manual_seed(0)
    attn = WindowRelPosAttention(32, num_heads=4)
    x = torch.randn(2, 3, 5, 32)
    with torch.no_grad():
        plain = super(WindowRelPosAttention, attn).forward(x.reshape(2, 15, 32)).reshape(2, 3, 5, 32)
        assert torch.allclose(attn(x), plain, atol=1e-6)


def test_get_rel_pos_interpolation_matches_linear_formula():
    table = torch.randn(7, 3)  # learnt for 4 positions (offsets -3..3)
    out = get_rel_pos(6, table)  # 6 positions: offsets -5..5 -> 11 rows by interpolation
    xs = np.clip((np.arange(11) + 0.5) * 7 / 11 - 0.5, 0, 6)  # align_corners=False source coordinates
    expected = np.stack([np.interp(xs, np.arange(7), table[:, c].numpy()) for c in range(3)], axis=1)
    assert torch.allclose(out[5, 0], torch.from_numpy(expected[10]).float(), atol=1e-5)  # offset +5
    assert torch.allclose(out[0, 5], torch.from_numpy(expected[0]).float(), atol=1e-5)  # offset -5
    assert torch.equal(get_rel_pos(4, table)[2, 1], table[4])  # same size: a plain gather of offset +1


def test_rel_pos_zero_init_equals_no_rel_pos_and_grads_reach_tables():
    with_rel = vitdet_tiny(use_rel_pos=True)
    without = vitdet_tiny(use_rel_pos=False)
    report = load_weights(with_rel, without.state_dict())
    assert sorted(report.expected_missing_keys) == sorted(k for k in with_rel.state_dict() if 'rel_pos' in k)
    assert with_rel.blocks[1].attn.rel_pos_h.shape == (2 * 4 - 1, 64)  # global block: the 4 x 4 grid of 64 px
    assert with_rel.blocks[0].attn.rel_pos_h.shape == (2 * 3 - 1, 64)  # window block: the window
    x = torch.randn(1, 3, 80, 96)
    with torch.no_grad():
        assert torch.allclose(with_rel.eval()(x)[0], without.eval()(x)[0], atol=1e-5)
    with_rel(x)[0].square().mean().backward()
    assert with_rel.blocks[1].attn.rel_pos_w.grad.abs().sum() > 0


def test_rel_pos_tables_interpolated_when_input_grid_changes():
    model = vitdet_tiny(window_size=0, global_attn_indexes=()).eval()  # global rel-pos sized for 4 x 4
    randomise_rel_pos(model)
    resized = vitdet_tiny(window_size=0, global_attn_indexes=(), rel_pos_img_size=(96, 128)).eval()
    report = load_weights(resized, model.state_dict())  # tables interpolated at load time
    assert {'blocks.0.attn.rel_pos_h', 'blocks.0.attn.rel_pos_w'} <= set(report.resized_keys)
    x = torch.randn(1, 3, 96, 128)  # 6 x 8 grid: the 4 x 4 tables are interpolated on the fly
    with torch.no_grad():
        assert torch.allclose(model(x)[0], resized(x)[0], atol=1e-5)


# -------------------------------------------------------------------------------- checkpointing and freezing

def test_with_cp_gives_identical_outputs_and_gradients():
    results = []
    for with_cp in (False, True):
        model = vitdet_tiny(drop_path_rate=0.3, with_cp=with_cp).train()
        randomise_rel_pos(model)
        torch.manual_seed(3)  # same drop-path draws
        out = model(torch.randn(2, 3, 64, 80))[0]
        out.square().mean().backward()
        results.append((out.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}))
    (out_a, grads_a), (out_b, grads_b) = results
    assert torch.equal(out_a, out_b)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 10
    for name in grads_a:
        assert torch.allclose(grads_a[name], grads_b[name], atol=1e-6), name


def test_frozen_stages_stop_gradients_and_stay_in_eval():
    model = tiny_backbone(frozen_stages=2, drop_path_rate=0.1)
    model.train()
    frozen = [model.patch_embed, model.blocks[0], model.blocks[1]]
    assert all(not m.training for m in frozen) and model.blocks[2].training
    model(torch.randn(1, 3, 64, 64))[0].sum().backward()
    for name, param in model.named_parameters():
        is_frozen = name.startswith(('patch_embed', 'cls_token', 'pos_embed', 'blocks.0.', 'blocks.1.', 'norm'))
        assert param.requires_grad != is_frozen, name
        assert (param.grad is None) == is_frozen, name
    model.eval().train()
    assert all(not m.training for m in frozen) and model.blocks[3].training


# ------------------------------------------------------------------------------------------------------ neck

def test_layer_norm_2d_normalises_channels():
    norm = LayerNorm2d(8)
    x = torch.randn(2, 8, 3, 5)
    expected = F.layer_norm(x.permute(0, 2, 3, 1), (8, ), eps=1e-6).permute(0, 3, 1, 2)
    assert torch.allclose(norm(x), expected, atol=1e-6)


def test_simple_fpn_shapes_and_strides():
    neck = SimpleFPN(in_channels=64, out_channels=32)
    feature = torch.randn(2, 64, 8, 12)  # stride 16 of a 128 x 192 image
    outs = neck((torch.randn(2, 64, 8, 12), feature))  # only the last map is used
    assert [tuple(o.shape) for o in outs] == [(2, 32, 32, 48), (2, 32, 16, 24), (2, 32, 8, 12), (2, 32, 4, 6),
                                              (2, 32, 2, 3)]  # strides 4, 8, 16, 32, 64
    assert not any(m.bias is not None for m in neck.modules() if isinstance(m, torch.nn.Conv2d))
    assert neck.stems[0][0].out_channels == 32 and neck.stems[0][3].out_channels == 16  # 64 -> 32 -> 16


# ------------------------------------------------------------------------------------ mmdet and mmseg models

# The Mask R-CNN (MAEViT + SimpleFPN) and UperNet (MAEViT + Feature2Pyramid) built from configs/smoke/ are
# exercised in test_registry.py.
