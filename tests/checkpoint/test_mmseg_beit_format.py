"""mmseg's `MAE` / `BEiT` backbone checkpoints (`formats/mmseg_beit.py`): told apart from mmpretrain's
scheme by their BEiT-only keys, renamed to our names with layer scale and bias tables, and loaded into a MAEViT
with the ADE20K options to the same features; an MAE pretraining file loads with the new tensors new by design.

Not a `CASES` writer in test_formats.py: those compare plain encoders key for key, and these files carry
layer scales and bias tables a plain encoder does not have (the full-size comparison with mmseg's own modules is
tests/models/test_beit_parity.py).
"""
import pytest
import torch

from helpers.mmseg_beit import to_mmseg_beit
from mae_transfer.checkpoint import canonicalize, convert_state_dict, load_weights
from mae_transfer.checkpoint.formats import detect_scheme
from mae_transfer.models.backbones.mae_vit import MAEViT

OPTIONS = dict(arch='tiny', embed_dim=32, depth=2, num_heads=2, out_indices=(0, 1), use_rel_pos_bias=True,
               layer_scale_init_value=1.0)


def _random_backbone(img_size=48, seed=0, zero_k_bias=False, zero_pos=False) -> MAEViT:
    model = MAEViT(img_size=img_size, **OPTIONS).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * (0.5 if 'table' in name else 0.1)
                        + (1.0 if name.endswith(('gamma', 'norm1.weight', 'norm2.weight')) else 0.0))
        for block in model.blocks:
            if zero_k_bias:
                block.attn.qkv.bias[32:64] = 0
        if zero_pos:
            model.pos_embed.zero_()
    return model


def _features(model, size=48):
    image = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        return model(image)


@pytest.mark.parametrize('beit', [False, True])
def test_mmseg_mae_and_beit_files_give_the_same_features(beit, tmp_path):
    source = _random_backbone(zero_k_bias=beit, zero_pos=beit)
    state = {f'backbone.{k}': v for k, v in to_mmseg_beit(source.state_dict(), beit=beit).items()}
    state.update({'decode_head.conv_seg.weight': torch.zeros(3, 8, 1, 1), 'neck.fpn1.0.weight': torch.zeros(1)})
    assert detect_scheme(state) == ('mmseg_beit', 'backbone.')
    assert ('backbone.layers.0.attn.q_bias' in state) == beit and ('backbone.pos_embed' in state) == (not beit)
    parts = canonicalize(state).parts  # the segmentor's neck and heads keep their names; index buffers are no part
    assert list(parts) == ['decode_head.conv_seg.weight', 'neck.fpn1.0.weight']
    path = tmp_path / 'mmseg_upernet.pth'
    torch.save({'state_dict': state, 'meta': {}}, path)

    target = MAEViT(img_size=48, **OPTIONS).eval()
    report = load_weights(target, str(path))
    assert report.ok and report.meta.source_format == 'mmseg_beit' and not report.expected_missing_keys
    assert report.meta.grid_size == (3, 3)
    for ours, theirs in zip(_features(target), _features(source)):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_mmpretrain_files_stay_mmpretrain_and_beit_keys_are_renamed():
    source = _random_backbone()
    mmseg = to_mmseg_beit(source.state_dict())
    plain = {k: v for k, v in mmseg.items() if 'gamma' not in k and 'relative_position' not in k}
    assert detect_scheme(plain) == ('mmpretrain', '')
    state_dict, meta = convert_state_dict(mmseg)
    assert meta.source_format == 'mmseg_beit'
    assert torch.equal(state_dict['blocks.1.ls2.gamma'], source.blocks[1].ls2.gamma)
    assert torch.equal(state_dict['blocks.0.attn.relative_position_bias_table'],
                       source.blocks[0].attn.relative_position_bias_table)
    assert not any('relative_position_index' in key for key in state_dict)


def test_bias_tables_of_another_grid_are_resized_and_mae_pretraining_files_load_as_new_by_design(tmp_path):
    source = _random_backbone(img_size=48)  # 3 x 3 grid: tables of 5 * 5 + 3 rows
    path = tmp_path / 'mmseg_mae.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in to_mmseg_beit(source.state_dict()).items()}}, path)
    target = MAEViT(img_size=80, **OPTIONS)  # 5 x 5 grid: 9 * 9 + 3 rows
    report = load_weights(target, str(path))
    assert report.ok and 'blocks.0.attn.relative_position_bias_table' in report.resized_keys
    table = target.blocks[0].attn.relative_position_bias_table
    assert table.shape == (84, 2)
    assert torch.equal(table[-3:], source.blocks[0].attn.relative_position_bias_table[-3:])  # cls entries kept
    # the offset-0 entry (centre of the map) stays where it was for a grid resized about its centre
    assert torch.allclose(table[40], source.blocks[0].attn.relative_position_bias_table[12], atol=0.3)

    plain = MAEViT(arch='tiny', embed_dim=32, depth=2, num_heads=2, img_size=48)  # an MAE encoder
    report = load_weights(MAEViT(img_size=48, **OPTIONS), plain.state_dict())
    assert report.ok and sorted(report.expected_missing_keys) == sorted(
        f'blocks.{i}.{name}' for i in range(2) for name in ('attn.relative_position_bias_table', 'ls1.gamma',
                                                           'ls2.gamma'))


def test_a_fresh_table_and_unit_layer_scale_leave_the_pretrained_function_unchanged():
    plain = MAEViT(arch='tiny', embed_dim=32, depth=2, num_heads=2, img_size=48, out_indices=(0, 1)).eval()
    options = MAEViT(img_size=48, **OPTIONS).eval()
    load_weights(options, plain.state_dict())
    for a, b in zip(_features(plain, 64), _features(options, 64)):  # another grid: the zero table resized
        torch.testing.assert_close(a, b)
