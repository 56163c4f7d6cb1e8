"""`load_weights`: every model, every file suffix and format through one path; pos-embed and rel-pos fitting from
the checkpoint's real grid; one report, logged once, with no empty sections."""
import argparse
import logging

import pytest
import torch
from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu

from mae_transfer.checkpoint import adapt, convert_state_dict, load_weights, save_encoder_checkpoint
from mae_transfer.checkpoint.formats import DECODER_NAMES
from mae_transfer.models import (MAEPretrainer, MAEViT, MaskedAutoencoderViT, TopdownPoseEstimator, ViTClassifier,
                                 ViTEncoder, get_2d_sincos_pos_embed, mae_vit_tiny_patch16, resize_pos_embed)


def tiny(img_size=64, seed=0, **kwargs) -> MaskedAutoencoderViT:
    torch.manual_seed(seed)
    return mae_vit_tiny_patch16(img_size=img_size, **kwargs)


def fixed_noise(n: int, length: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, length, generator=torch.Generator().manual_seed(seed))


def vitdet_tiny(seed: int = 0, **kwargs) -> MAEViT:
    """Tiny ViTDet-style backbone: windows of 3, global block 1, rel-pos."""
    torch.manual_seed(seed)
    return MAEViT(arch='tiny', img_size=64, **{**dict(window_size=3, global_attn_indexes=(1, ), use_rel_pos=True),
                                                **kwargs})


def save_official(path, state_dict, **args):
    torch.save({'model': state_dict, 'args': argparse.Namespace(model='mae_vit_tiny_patch16', **args),
                'epoch': 799}, path)
    return path


@pytest.fixture
def captured_logs(monkeypatch):
    messages = []
    monkeypatch.setattr(adapt, 'print_log', lambda msg, logger=None, level=logging.INFO: messages.append((level, msg)))
    return messages


# ------------------------------------------------------------------------------------------ the MAE model

def test_official_checkpoint_full_round_trip(tmp_path):
    source = tiny(seed=1)
    path = save_official(tmp_path / 'mae_visualize_vit_tiny.pth', source.state_dict(), norm_pix_loss=False)
    target = tiny(seed=2)
    result = load_weights(target, str(path), strict=True)
    assert result.ok and not result.encoder_only
    assert not result.missing_keys and not result.unexpected_keys and not result.expected_missing_keys
    assert not result.resized_keys
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    imgs, noise = torch.randn(1, 3, 64, 64), fixed_noise(1, 16)
    with torch.no_grad():
        assert torch.equal(source(imgs, noise=noise)[1], target(imgs, noise=noise)[1])


def test_our_pretraining_checkpoint_loads_with_its_prefix(tmp_path):
    source = tiny(seed=1)
    path = tmp_path / 'epoch_50.pth'  # what MAEPretrainer + mmengine write: keys under `mae.`
    torch.save({'state_dict': {f'mae.{k}': v for k, v in source.state_dict().items()}, 'meta': {}}, path)
    target = tiny(seed=2)
    result = load_weights(target, str(path), strict=True)
    assert result.ok and not result.encoder_only
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_official_checkpoint_encoder_only(tmp_path):
    source = tiny(seed=1)
    encoder_state = {k: v for k, v in source.state_dict().items() if not k.startswith(DECODER_NAMES)}
    path = save_official(tmp_path / 'mae_pretrain_vit_tiny.pth', encoder_state)
    target = tiny(seed=2)
    decoder_before = target.decoder_pred.weight.clone()
    result = load_weights(target, path, strict=True)
    assert result.encoder_only and result.ok
    assert sorted(result.expected_missing_keys) == sorted(
        k for k in target.state_dict() if k.startswith(DECODER_NAMES))
    assert 'mask_token' in result.expected_missing_keys
    assert torch.equal(target.blocks[1].attn.qkv.weight, source.blocks[1].attn.qkv.weight)
    assert torch.equal(target.decoder_pred.weight, decoder_before)
    # an encoder without decoder takes a full checkpoint: the decoder keys are set aside, not unexpected
    encoder = ViTEncoder(img_size=64, patch_size=16, embed_dim=192, depth=4, num_heads=3)
    full = save_official(tmp_path / 'full.pth', source.state_dict())
    result = load_weights(encoder, full, strict=True)
    assert result.ok and result.dropped_keys['MAE decoder'] and torch.equal(encoder.pos_embed, source.pos_embed)


def test_official_checkpoint_reports_problems(tmp_path):
    state = tiny(seed=1).state_dict()
    state['head.weight'] = torch.zeros(10, 192)
    del state['norm.weight']
    path = save_official(tmp_path / 'odd.pth', state)
    result = load_weights(tiny(seed=2), path)
    assert result.unexpected_keys == ['head.weight'] and result.missing_keys == ['norm.weight']
    assert not result.ok
    with pytest.raises(RuntimeError, match='head.weight'):
        load_weights(tiny(seed=2), path, strict=True)
    wrong_width = save_official(tmp_path / 'other_size.pth', tiny(seed=1, decoder_embed_dim=64).state_dict())
    with pytest.raises(ValueError, match='decoder_embed'):
        load_weights(tiny(seed=2), wrong_width)


def test_official_checkpoint_resizes_pos_embed(tmp_path):
    source = tiny(img_size=64, seed=1)
    path = save_official(tmp_path / 'mae_full.pth', source.state_dict())
    target = tiny(img_size=(96, 128), seed=2)
    result = load_weights(target, path, strict=True)
    assert result.resized_keys == ['pos_embed'] and result.recomputed_keys == ['decoder_pos_embed']
    assert torch.allclose(target.pos_embed, resize_pos_embed(source.pos_embed, (6, 8)))
    assert torch.equal(target.decoder_pos_embed[0], get_2d_sincos_pos_embed(128, (6, 8), cls_token=True))
    assert torch.equal(target.decoder_pred.weight, source.decoder_pred.weight)
    loss, pred, _ = target(torch.randn(1, 3, 96, 128))
    assert pred.shape == (1, 48, 768) and torch.isfinite(loss)
    # a learned non-square table without metadata (a plain dict: another program's file): its grid cannot be
    # known from the token count, it must be given (a sin-cos table, as MAE's, is recognised: test_canonical.py)
    wide = tiny(img_size=(64, 96), seed=3)
    with torch.no_grad():
        wide.pos_embed.add_(0.05 * torch.randn_like(wide.pos_embed))
    path = save_official(tmp_path / 'wide.pth', dict(wide.state_dict()))
    square = tiny(img_size=64, seed=2)
    with pytest.raises(ValueError, match='checkpoint_grid'):
        load_weights(square, path)
    result = load_weights(square, path, checkpoint_grid=(4, 6))
    assert result.ok and result.resized_keys == ['pos_embed']
    assert torch.allclose(square.pos_embed, resize_pos_embed(wide.pos_embed, (4, 4), old_grid=(4, 6)))
    with pytest.raises(ValueError, match='does not match'):
        load_weights(square, path, checkpoint_grid=(5, 5))
    # our own models record their grid in the state-dict metadata: no checkpoint_grid needed
    recorded = save_official(tmp_path / 'wide_ours.pth', wide.state_dict())
    assert load_weights(tiny(img_size=64, seed=2), recorded).meta.grid_source == 'metadata'


# ------------------------------------------------------------------------------------------------ backbones

@pytest.mark.parametrize('layout', ['official', 'ours'])
def test_init_cfg_pretrained_loads_official_and_our_checkpoints(tmp_path, captured_logs, layout):
    mae = mae_vit_tiny_patch16(img_size=64)
    state = mae.state_dict()  # encoder + decoder keys, official names
    checkpoint = {'model': state} if layout == 'official' else {'state_dict': {'mae.' + k: v for k, v in state.items()}}
    path = tmp_path / 'mae.pth'
    torch.save(checkpoint, path)
    backbone = vitdet_tiny(seed=5, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    backbone.init_weights()
    for key, value in backbone.state_dict().items():
        if 'rel_pos' in key:
            assert not value.any(), key  # zero-initialised, new by design
        else:
            assert torch.equal(value, state[key]), key
    assert not [msg for level, msg in captured_logs if level >= logging.WARNING]
    expected = [msg for _, msg in captured_logs if 'new by design' in msg]
    assert len(expected) == 1 and 'blocks.0.attn.rel_pos_h' in expected[0]
    assert any('MAE decoder' in msg for _, msg in captured_logs)


def test_pretrained_pos_embed_resized_and_problems_reported_loudly(captured_logs):
    state = mae_vit_tiny_patch16(img_size=64).state_dict()  # 4 x 4 grid
    del state['blocks.0.norm1.weight']
    state['blocks.0.extra'] = torch.zeros(1)
    backbone = MAEViT(arch='tiny', img_size=96)  # 6 x 6 grid
    report = load_weights(backbone, {'model': state})
    assert report.resized_keys == ['pos_embed']
    assert torch.equal(backbone.pos_embed, resize_pos_embed(state['pos_embed'], 6))
    assert report.missing_keys == ['blocks.0.norm1.weight'] and report.unexpected_keys == ['blocks.0.extra']
    warnings = [msg for level, msg in captured_logs if level == logging.WARNING]
    assert len(warnings) == 2 and 'blocks.0.norm1.weight' in warnings[0] and 'blocks.0.extra' in warnings[1]


def test_other_formats_go_through_the_same_path(tmp_path):
    from safetensors.torch import save_file
    encoder = {k: v.contiguous() for k, v in mae_vit_tiny_patch16(img_size=64).state_dict().items()
               if not k.startswith(('decoder_', 'mask_token'))}
    path = tmp_path / 'timm_like.safetensors'
    save_file(encoder, str(path))
    torch.manual_seed(3)
    backbone = MAEViT(arch='tiny', img_size=64, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    backbone.init_weights()
    assert all(torch.equal(backbone.state_dict()[k], v) for k, v in encoder.items())


def test_a_clean_load_logs_one_line_and_no_empty_sections(tmp_path, captured_logs):
    encoder = {k: v for k, v in tiny().state_dict().items() if not k.startswith(DECODER_NAMES)}
    report = load_weights(MAEViT(arch='tiny', img_size=64), save_official(tmp_path / 'enc.pth', encoder))
    assert report.ok and not report.dropped_keys and not report.expected_missing_keys
    assert len(captured_logs) == 1 and captured_logs[0][0] == logging.INFO
    assert f'loaded {len(encoder)} tensors' in captured_logs[0][1]
    assert 'trained as mae_vit_tiny_patch16' in captured_logs[0][1]
    with pytest.raises(TypeError, match='not a Linear without one'):
        load_weights(torch.nn.Linear(2, 2), encoder)


def test_prefix_takes_only_the_keys_under_it():
    state = tiny(seed=1).state_dict()
    detector = {**{f'backbone.{k}': v for k, v in state.items() if not k.startswith(DECODER_NAMES)},
                'neck.conv.weight': torch.ones(2, 2), 'roi_head.fc.weight': torch.ones(2, 2),
                'ema.backbone.cls_token': torch.zeros(1, 1, 192)}
    backbone = MAEViT(arch='tiny', img_size=64)
    report = load_weights(backbone, {'state_dict': detector, 'meta': {}}, prefix='backbone')
    assert report.ok and torch.equal(backbone.cls_token, state['cls_token'])
    assert sorted(sum(report.dropped_keys.values(), [])) == ['ema.backbone.cls_token', 'neck.conv.weight',
                                                             'roi_head.fc.weight']


# --------------------------------------------------------- a 128 x 160 pretraining: 8 x 10 = 80 + cls = 81 = 9 x 9

def pretrainer_checkpoint(path, learned: bool) -> MAEPretrainer:
    """What a MAEPretrainer pretrained at 128 x 160 leaves: an mmengine checkpoint, keys under `mae.`."""
    torch.manual_seed(0)
    pretrainer = MAEPretrainer(arch='tiny', img_size=(128, 160))
    if learned:  # a table that is not MAE's sin-cos: only the recorded grid can tell 8 x 10 from 9 x 9
        with torch.no_grad():
            pretrainer.mae.pos_embed.add_(0.05 * torch.randn_like(pretrainer.mae.pos_embed))
    save_checkpoint({'meta': {'epoch': 1}, 'state_dict': weights_to_cpu(pretrainer.state_dict())}, str(path))
    return pretrainer


def expected_from_8x10(table: torch.Tensor, grid) -> torch.Tensor:
    expected = resize_pos_embed(table, grid, old_grid=(8, 10))
    as_9x9 = resize_pos_embed(torch.cat([table.new_zeros(1, 1, table.shape[2]), table], 1), grid, old_grid=(9, 9))
    assert not torch.allclose(expected, as_9x9, atol=1e-3)  # the old square assumption gives another table
    return expected


@pytest.mark.parametrize('source', ['encoder.pth', 'encoder.safetensors', 'bare_sincos.pth',
                                    'bare_sincos.safetensors', 'pretrain_sincos', 'pretrain_learned'])
def test_a_non_square_pretraining_grid_is_resized_from_its_true_grid_whatever_the_suffix(tmp_path, source):
    checkpoint = tmp_path / 'epoch_1.pth'
    pretrainer = pretrainer_checkpoint(checkpoint, learned=source != 'pretrain_sincos')
    table = pretrainer.mae.pos_embed.detach().clone()  # [1, 81, 192]
    if source.startswith('encoder'):  # converted once, written by save_encoder_checkpoint (grid in its meta)
        checkpoint = save_encoder_checkpoint(*convert_state_dict(torch.load(checkpoint, weights_only=True)),
                                             tmp_path / source)
    elif source.startswith('bare_sincos'):  # a bare timm-like file: only the sin-cos table tells the grid
        pretrainer = pretrainer_checkpoint(tmp_path / 'unused.pth', learned=False)
        table = pretrainer.mae.pos_embed.detach().clone()
        encoder = {k: v.contiguous() for k, v in pretrainer.mae.state_dict().items() if not k.startswith(DECODER_NAMES)}
        checkpoint = tmp_path / source
        if source.endswith('.pth'):
            torch.save(encoder, checkpoint)
        else:
            from safetensors.torch import save_file
            save_file(encoder, str(checkpoint))
    backbone = MAEViT(arch='tiny', img_size=(64, 96), init_cfg=dict(type='Pretrained', checkpoint=str(checkpoint)))
    backbone.init_weights()
    assert torch.allclose(backbone.pos_embed.detach(), expected_from_8x10(table, (4, 6)), atol=1e-6)
    assert torch.equal(backbone.blocks[3].mlp.fc2.weight, pretrainer.mae.blocks[3].mlp.fc2.weight)
    report = load_weights(MAEViT(arch='tiny', img_size=(64, 96)), str(checkpoint))
    assert report.ok and report.resized_keys == ['pos_embed'] and report.meta.grid_size == (8, 10)


@pytest.mark.parametrize('learned', [False, True])
def test_every_model_loads_a_non_square_pretraining_through_the_same_path(tmp_path, learned):
    path = tmp_path / 'epoch_1.pth'
    source = pretrainer_checkpoint(path, learned)
    table = source.mae.pos_embed.detach().clone()
    init_cfg = dict(type='Pretrained', checkpoint=str(path))

    mae = tiny(img_size=64, seed=3)  # the MAE model: encoder and decoder, the decoder's table recomputed
    report = load_weights(mae, str(path), strict=True)
    assert report.recomputed_keys == ['decoder_pos_embed'] and not report.encoder_only
    assert torch.allclose(mae.pos_embed, expected_from_8x10(table, (4, 4)), atol=1e-6)
    assert torch.equal(mae.decoder_pred.weight, source.mae.decoder_pred.weight)
    assert torch.equal(mae.decoder_pos_embed[0], get_2d_sincos_pos_embed(128, (4, 4), cls_token=True))

    pretrainer = MAEPretrainer(arch='tiny', img_size=(64, 64), init_cfg=init_cfg)  # its `mae`, from init_cfg
    pretrainer.init_weights()
    assert torch.equal(pretrainer.mae.pos_embed, mae.pos_embed)
    assert torch.equal(pretrainer.mae.decoder_embed.weight, source.mae.decoder_embed.weight)

    classifier = ViTClassifier(backbone=dict(arch='tiny', img_size=64, init_cfg=init_cfg), num_classes=3)
    classifier.init_weights()
    assert torch.allclose(classifier.backbone.pos_embed, mae.pos_embed, atol=1e-6)

    codec = dict(type='UDPHeatmap', input_size=(64, 64), heatmap_size=(16, 16), sigma=2)
    pose = TopdownPoseEstimator(backbone=dict(arch='tiny', img_size=64, use_cls_token=False, init_cfg=init_cfg),
                                head=dict(type='HeatmapHead', deconv_out_channels=(32, 32)), codec=codec)
    pose.init_weights()
    assert torch.allclose(pose.backbone.pos_embed, mae.pos_embed, atol=1e-6)
    assert torch.equal(pose.backbone.blocks[0].attn.qkv.weight, source.mae.blocks[0].attn.qkv.weight)
