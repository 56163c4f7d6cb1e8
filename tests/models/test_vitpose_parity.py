"""ViTPose parity: a released-style ViTPose checkpoint evaluates unchanged in our ViT-B pose config.

The reference below is ViTPose's computation written out from the published code (ViTAE-Transformer/ViTPose,
`mmpose/models/backbones/vit.py` and mmpose 0.x `TopdownHeatmapSimpleHead`, commit 33f49cf): patch conv with
padding 2, `x + pos_embed[:, 1:] + pos_embed[:, :1]` with no cls token in the sequence, pre-norm blocks
(LayerNorm eps 1e-6, softmax(q * scale @ k^T) v, exact GELU), `last_norm`, then two deconvolutions (k4, s2, p1,
no bias) + BatchNorm (eval) + ReLU and a 1x1 conv. Random weights and random BN statistics are saved with
ViTPose's key scheme (`backbone.*`, `keypoint_head.*`) and loaded the way `tools/test.py` loads a checkpoint.
"""
import pytest
import torch
import torch.nn.functional as F
from mmengine import Config
from mmengine.runner import load_checkpoint

from mae_transfer.checkpoint import load_weights
from mae_transfer.checkpoint.formats import detect_scheme, vitpose_grid
from mae_transfer.utils.configs import CONFIG_ROOT, build_model

CONFIG = CONFIG_ROOT / 'pose' / 'heatmap_vit-base-p16_8xb64-210e_coco-256x192.py'
DIM, DEPTH, HEADS, GRID, KEYPOINTS = 768, 12, 12, (16, 12), 17


def vitpose_state_dict(seed: int = 0) -> dict:
    """ViTPose-B + classic head with random weights, in ViTPose's key names."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape, std=1.0, mean=0.0):
        return torch.randn(*shape, generator=gen) * std + mean

    sd = {'backbone.pos_embed': randn(1, 1 + GRID[0] * GRID[1], DIM, std=0.5),
          'backbone.patch_embed.proj.weight': randn(DIM, 3, 16, 16, std=0.02),
          'backbone.patch_embed.proj.bias': randn(DIM, std=0.02)}
    for i in range(DEPTH):
        block = f'backbone.blocks.{i}.'
        for norm in ('norm1', 'norm2'):
            sd[block + norm + '.weight'] = randn(DIM, std=0.1, mean=1.0)
            sd[block + norm + '.bias'] = randn(DIM, std=0.1)
        for name, (out, inp) in {'attn.qkv': (3 * DIM, DIM), 'attn.proj': (DIM, DIM), 'mlp.fc1': (4 * DIM, DIM),
                                 'mlp.fc2': (DIM, 4 * DIM)}.items():
            sd[block + name + '.weight'] = randn(out, inp, std=0.03)
            sd[block + name + '.bias'] = randn(out, std=0.02)
    sd['backbone.last_norm.weight'] = randn(DIM, std=0.1, mean=1.0)
    sd['backbone.last_norm.bias'] = randn(DIM, std=0.1)
    channels = DIM
    for index in (0, 3):  # ConvTranspose2d, BatchNorm2d, ReLU per deconv layer
        sd[f'keypoint_head.deconv_layers.{index}.weight'] = randn(channels, 256, 4, 4, std=0.02)
        bn = f'keypoint_head.deconv_layers.{index + 1}.'
        sd[bn + 'weight'] = randn(256, std=0.2, mean=1.0)
        sd[bn + 'bias'] = randn(256, std=0.2)
        sd[bn + 'running_mean'] = randn(256, std=0.3)
        sd[bn + 'running_var'] = torch.rand(256, generator=gen) + 0.5
        sd[bn + 'num_batches_tracked'] = torch.tensor(1000)
        channels = 256
    sd['keypoint_head.final_layer.weight'] = randn(KEYPOINTS, 256, 1, 1, std=0.05)
    sd['keypoint_head.final_layer.bias'] = randn(KEYPOINTS, std=0.05)
    return sd


@torch.no_grad()
def vitpose_reference(sd: dict, img: torch.Tensor) -> torch.Tensor:
    """ViTPose's forward (backbone + TopdownHeatmapSimpleHead, eval mode) in float64."""
    sd = {k: v.double() if v.is_floating_point() else v for k, v in sd.items()}
    p = 'backbone.'
    x = F.conv2d(img.double(), sd[p + 'patch_embed.proj.weight'], sd[p + 'patch_embed.proj.bias'], stride=16,
                 padding=2)  # [N, D, Hp, Wp]
    n, _, hp, wp = x.shape
    x = x.flatten(2).transpose(1, 2)  # [N, L, D]
    x = x + sd[p + 'pos_embed'][:, 1:] + sd[p + 'pos_embed'][:, :1]
    for i in range(DEPTH):
        b = f'{p}blocks.{i}.'
        h = F.layer_norm(x, (DIM, ), sd[b + 'norm1.weight'], sd[b + 'norm1.bias'], eps=1e-6)
        qkv = F.linear(h, sd[b + 'attn.qkv.weight'], sd[b + 'attn.qkv.bias'])
        qkv = qkv.reshape(n, -1, 3, HEADS, DIM // HEADS).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q * (DIM // HEADS) ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
        h = (attn @ v).transpose(1, 2).reshape(n, -1, DIM)
        x = x + F.linear(h, sd[b + 'attn.proj.weight'], sd[b + 'attn.proj.bias'])
        h = F.layer_norm(x, (DIM, ), sd[b + 'norm2.weight'], sd[b + 'norm2.bias'], eps=1e-6)
        h = F.linear(F.gelu(F.linear(h, sd[b + 'mlp.fc1.weight'], sd[b + 'mlp.fc1.bias'])), sd[b + 'mlp.fc2.weight'],
                     sd[b + 'mlp.fc2.bias'])
        x = x + h
    x = F.layer_norm(x, (DIM, ), sd[p + 'last_norm.weight'], sd[p + 'last_norm.bias'], eps=1e-6)
    y = x.permute(0, 2, 1).reshape(n, -1, hp, wp)  # [N, D, 16, 12]
    h = 'keypoint_head.'
    for index in (0, 3):
        y = F.conv_transpose2d(y, sd[f'{h}deconv_layers.{index}.weight'], stride=2, padding=1, output_padding=0)
        bn = f'{h}deconv_layers.{index + 1}.'
        y = F.relu(F.batch_norm(y, sd[bn + 'running_mean'], sd[bn + 'running_var'], sd[bn + 'weight'], sd[bn + 'bias'],
                                training=False, eps=1e-5))
    return F.conv2d(y, sd[h + 'final_layer.weight'], sd[h + 'final_layer.bias'])  # [N, K, 64, 48]


def test_vitpose_checkpoint_gives_the_reference_heatmaps(tmp_path):
    sd = vitpose_state_dict()
    path = tmp_path / 'vitpose-b.pth'
    torch.save({'meta': {'mmcv_version': '1.3.9', 'time': 'Mon Jan  1 00:00:00 2022'}, 'state_dict': sd}, path)
    img = torch.randn(1, 3, 256, 192, generator=torch.Generator().manual_seed(1))
    reference = vitpose_reference(sd, img)

    cfg = Config.fromfile(str(CONFIG))
    cfg.model.backbone.init_cfg = None  # no MAE file needed: the ViTPose checkpoint replaces every weight
    model = build_model(cfg).eval()
    assert model.backbone.grid_size == GRID and model.backbone.pos_embed.shape == (1, 193, DIM)
    load_checkpoint(model, str(path), map_location='cpu', strict=True)  # as tools/test.py (Runner.load_from)
    with torch.no_grad():
        ours = model(img, mode='tensor')
    assert ours.shape == reference.shape == (1, KEYPOINTS, 64, 48)
    error = (ours.double() - reference).norm() / reference.norm()
    assert error < 1e-4, f'relative error {error:.2e}'


def to_mmpose1(sd: dict) -> dict:
    """The same network as mmpose 1.x saves it: mmpretrain `VisionTransformer(with_cls_token=False)` names, a
    `pos_embed` without cls row (ViTPose's cls row folded into the patches' rows), mmpose's `HeatmapHead` under
    `head.`."""
    block = {'norm1': 'ln1', 'norm2': 'ln2', 'mlp.fc1': 'ffn.layers.0.0', 'mlp.fc2': 'ffn.layers.1',
             'attn.qkv': 'attn.qkv', 'attn.proj': 'attn.proj'}
    out = {}
    for key, value in sd.items():
        if key == 'backbone.pos_embed':
            out[key] = value[:, 1:] + value[:, :1]  # [1, 192, D]
        elif key.startswith('backbone.patch_embed.proj.'):
            out[key.replace('patch_embed.proj.', 'patch_embed.projection.')] = value
        elif key.startswith('backbone.last_norm.'):
            out[key.replace('last_norm.', 'ln1.')] = value
        elif key.startswith('backbone.blocks.'):
            _, _, index, rest = key.split('.', 3)
            module, _, param = rest.rpartition('.')
            out[f'backbone.layers.{index}.{block[module]}.{param}'] = value
        else:
            out[key.replace('keypoint_head.', 'head.')] = value
    return out


def test_mmpose1_vitpose_checkpoint_gives_the_reference_heatmaps(tmp_path):
    sd = vitpose_state_dict(seed=3)
    path = tmp_path / 'td-hm_ViTPose-base.pth'
    torch.save({'meta': {'mmengine_version': '0.7.0'}, 'state_dict': to_mmpose1(sd)}, path)
    img = torch.randn(1, 3, 256, 192, generator=torch.Generator().manual_seed(4))
    reference = vitpose_reference(sd, img)
    cfg = Config.fromfile(str(CONFIG))
    cfg.model.backbone.init_cfg = None
    model = build_model(cfg).eval()
    load_checkpoint(model, str(path), map_location='cpu', strict=True)
    with torch.no_grad():
        ours = model(img, mode='tensor')
    error = (ours.double() - reference).norm() / reference.norm()
    assert error < 1e-4, f'relative error {error:.2e}'
    # the backbone alone through load_weights (init_cfg / convert_checkpoint path)
    report = load_weights(model.backbone, {'state_dict': to_mmpose1(sd)})
    assert report.ok and report.meta.source_format == 'mmpose_vitpose' and report.meta.grid_size == GRID
    assert not report.resized_keys and torch.equal(model.backbone.pos_embed[:, 0], torch.zeros(1, DIM))


def test_vitpose_backbone_loads_through_load_weights():
    sd = vitpose_state_dict(seed=2)
    assert detect_scheme(sd) == ('vitpose', 'backbone.') and vitpose_grid(192) == (16, 12)
    cfg = Config.fromfile(str(CONFIG))
    cfg.model.backbone.init_cfg = None
    backbone = build_model(cfg).backbone
    report = load_weights(backbone, {'state_dict': sd})
    assert report.ok and report.meta.source_format == 'vitpose' and report.meta.grid_size == GRID
    assert not report.resized_keys and report.dropped_keys == {'heads': [k for k in sd if k.startswith('keypoint_')]}
    assert torch.equal(backbone.norm.weight, sd['backbone.last_norm.weight'])
    assert torch.equal(backbone.pos_embed, sd['backbone.pos_embed'])


def test_pose_table_is_resized_once_at_load_not_per_forward(monkeypatch):
    """The tiny twin inherits ViTPose's options: an MAE checkpoint's sin-cos 8x8 table becomes the 8x6 input grid's
    table at load; the forward at 128x96 then uses it as it is."""
    from mae_transfer.models.layers import vit as vit_layers
    from mae_transfer.models.mae import MaskedAutoencoderViT

    cfg = Config.fromfile(str(CONFIG_ROOT / 'pose' /
                                                     'heatmap_vit-tiny-p16_1xb32-300i_synthetic-128x96.py'))
    backbone = build_model(cfg).backbone
    assert (backbone.patch_padding, backbone.add_cls_pos_to_patches, backbone.final_norm) == (2, True, True)
    assert backbone.grid_size == (8, 6) and not backbone.use_cls_token
    mae = MaskedAutoencoderViT(img_size=128, patch_size=16, embed_dim=192, depth=4, num_heads=3, decoder_embed_dim=64,
                               decoder_depth=1, decoder_num_heads=2)
    report = load_weights(backbone, {'model': mae.state_dict()})
    assert report.meta.grid_size == (8, 8) and report.resized_keys == ['pos_embed']

    def no_resize(*args, **kwargs):
        raise AssertionError('pos_embed resized in the forward')

    monkeypatch.setattr(vit_layers, 'resize_pos_embed', no_resize)
    with torch.no_grad():
        assert backbone.eval()(torch.randn(1, 3, 128, 96))[-1].shape == (1, 192, 8, 6)


def test_vitpose_options_are_checked():
    from mae_transfer.models.backbones import MAEViT
    with pytest.raises(ValueError, match='use_cls_token'):
        MAEViT(arch='tiny', img_size=64, add_cls_pos_to_patches=True, use_cls_token=True)
    with pytest.raises(ValueError, match='patch_padding'):
        MAEViT(arch='tiny', img_size=64, patch_padding=8, use_cls_token=False)
    plain = MAEViT(arch='tiny', img_size=64, use_cls_token=False)
    assert (plain.patch_padding, plain.add_cls_pos_to_patches, plain.patch_embed.proj.padding) == (0, False, (0, 0))
