"""Canonical form and metadata: arch names from the arch table, the patch grid and how it was found, and the
rest of a whole-model file (`Canonical.parts`) in our whole-model layout."""
import pytest
import torch
from helpers.vit_checkpoints import (EMBED, encoder_keys, features, official_pretrain, reference, save, small_mae)
from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu

from mae_transfer.checkpoint import (canonicalize, convert_state_dict, load_pretrained_encoder, normalize_pos_embed,
                                     save_encoder_checkpoint)
from mae_transfer.models import MAEPretrainer, MaskedAutoencoderViT, get_2d_sincos_pos_embed, mae_vit_tiny_patch16

IMG = 32


@pytest.fixture(scope='module')
def mae() -> MaskedAutoencoderViT:
    return small_mae()


def test_meta_of_a_named_arch_and_of_the_sincos_grid(tmp_path):
    torch.manual_seed(0)
    tiny = mae_vit_tiny_patch16(img_size=IMG).eval()  # 192-d x 4 blocks x 3 heads, fixed sin-cos pos_embed
    official = {'model': dict(tiny.state_dict()), 'epoch': 799}  # a plain dict: no recorded grid, as official files
    state_dict, meta = load_pretrained_encoder(save(official, tmp_path / 'tiny.pth'))
    assert (meta.arch, meta.num_heads, meta.grid_source) == ('tiny', 3, 'sincos')
    assert meta.had_decoder and 'decoder_pred.weight' in meta.dropped_keys
    assert torch.equal(features(state_dict, meta), reference(tiny))
    assert 'ViT tiny (192-d x 4 blocks x 3 heads)' in meta.summary()


def test_non_square_grid_is_read_from_the_sincos_table():
    mae = small_mae(img_size=(32, 64), learned_pos=False)  # 2 x 4 patches; 4 x 2 has the same count
    state_dict, meta = convert_state_dict(official_pretrain(mae))
    assert (meta.grid_size, meta.grid_source, meta.img_size) == ((2, 4), 'sincos', (32, 64))
    assert torch.equal(features(state_dict, meta), reference(mae, (32, 64)))


def test_learned_non_square_grid_is_guessed_and_then_kept_in_metadata(tmp_path):
    mae = small_mae(img_size=(48, 80), learned_pos=False)  # 3 x 5 patches
    with torch.no_grad():  # a learned embedding: smooth over its grid, but not the exact sin-cos table
        mae.pos_embed.add_(0.05 * torch.randn_like(mae.pos_embed))
    state_dict, meta = convert_state_dict(official_pretrain(mae))
    assert (meta.grid_size, meta.grid_source) == ((3, 5), 'guess')

    written = save_encoder_checkpoint(state_dict, meta, tmp_path / 'encoder.safetensors')
    again_state, again = load_pretrained_encoder(written)
    assert again.source_format == 'mae_transfer'
    assert (again.grid_size, again.grid_source, again.dropped_keys) == ((3, 5), 'guess', meta.dropped_keys)
    assert all(torch.equal(again_state[k], state_dict[k]) for k in state_dict)


def test_timm_pos_embed_without_cls_row_gets_a_zero_row(mae):
    """timm `no_embed_class=True`: no position for the cls token, the same as a zero row for ours."""
    state = encoder_keys(mae)
    state['pos_embed'] = state['pos_embed'][:, 1:].clone()  # [1, 4, D]
    state_dict, meta = convert_state_dict(state)
    assert meta.grid_size == (2, 2) and state_dict['pos_embed'].shape == (1, 5, EMBED)
    expected = small_mae()
    with torch.no_grad():
        expected.pos_embed[:, :1] = 0.0
    assert torch.equal(features(state_dict, meta), reference(expected))


def test_our_tiny_is_never_taken_for_timm_vit_ti():
    """(192, 4) is our test size 'tiny'; (192, 12) is timm's / DeiT's ViT-Ti, named 'vit-ti' in the arch table."""
    for depth, arch in ((4, 'tiny'), (12, 'vit-ti')):
        torch.manual_seed(0)
        model = MaskedAutoencoderViT(img_size=IMG, patch_size=16, embed_dim=192, depth=depth, num_heads=3,
                                     decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2)
        _, meta = convert_state_dict({'model': encoder_keys(model)})
        assert (meta.arch, meta.num_heads, meta.depth) == (arch, 3, depth)
        assert f'ViT {arch} (192-d x {depth} blocks x 3 heads)' in meta.summary()


@pytest.mark.parametrize('learned', [False, True])
def test_our_checkpoints_record_their_grid_so_81_positions_are_not_a_9x9_square(tmp_path, learned):
    """128 x 160 pixels: an 8 x 10 grid, 1 + 80 = 81 = 9 x 9 rows. Every mae_transfer ViT writes its grid into
    the state-dict metadata, which torch.save and mmengine's checkpoints keep, so even a learned table (no
    sin-cos to recognise) converts with its true grid."""
    torch.manual_seed(0)
    pretrainer = MAEPretrainer(arch='tiny', img_size=(128, 160))
    if learned:
        with torch.no_grad():
            pretrainer.mae.pos_embed.add_(0.05 * torch.randn_like(pretrainer.mae.pos_embed))
    path = tmp_path / 'epoch_1.pth'
    save_checkpoint({'meta': {'epoch': 1}, 'state_dict': weights_to_cpu(pretrainer.state_dict())}, str(path))
    state_dict, meta = load_pretrained_encoder(path)
    assert meta.source_format == 'mae_transfer' and meta.source_prefix == 'mae.'
    assert (meta.grid_size, meta.img_size) == ((8, 10), (128, 160))
    assert meta.grid_source == 'metadata' and meta.had_decoder
    assert torch.equal(state_dict['pos_embed'], pretrainer.mae.pos_embed.detach())
    # without the metadata: the sin-cos table still tells; a learned one is guessed, never taken for 9 x 9
    bare = {k: v for k, v in pretrainer.mae.state_dict().items()}  # a plain dict: no _metadata
    _, bare_meta = convert_state_dict({'model': bare})
    assert bare_meta.grid_size != (9, 9)
    assert bare_meta.grid_source == ('guess' if learned else 'sincos')


def test_a_metadata_grid_that_does_not_fit_is_ignored():
    table = get_2d_sincos_pos_embed(EMBED, (2, 4), cls_token=True)[None]  # [1, 9, D]
    pos_embed, grid, source = normalize_pos_embed(table, EMBED, grid_hint=(3, 3))
    assert (grid, source) == ((2, 4), 'sincos') and torch.equal(pos_embed, table)
    _, grid, source = normalize_pos_embed(table, EMBED, grid_hint=(4, 2))
    assert (grid, source) == ((4, 2), 'metadata')  # a fitting hint is trusted over the table
    # 9 rows fit a 3 x 3 grid without cls row only where a format may lack it (timm no_embed_class)
    pos_embed, grid, source = normalize_pos_embed(table, EMBED, grid_hint=(3, 3), may_lack_cls_row=True)
    assert (grid, source, pos_embed.shape[1]) == ((3, 3), 'metadata', 10)


def test_parts_are_heads_at_the_encoder_prefix_and_everything_outside_it_but_decoders(mae):
    """Official fine-tuned files keep `fc_norm` / `head` beside the blocks (prefix ''); our classifier keeps them
    beside `backbone.`; our pretraining's decoder sits under `mae.` and is the decoder, never a part."""
    encoder = encoder_keys(mae)
    heads = {'fc_norm.weight': torch.ones(EMBED), 'fc_norm.bias': torch.zeros(EMBED),
             'head.weight': torch.ones(3, EMBED)}
    official = canonicalize({'model': {**encoder, **heads}})
    assert official.parts_from == {name: name for name in heads} and official.meta.source_prefix == ''
    ours = canonicalize({'state_dict': {**{f'backbone.{k}': v for k, v in encoder.items()}, **heads}, 'meta': {}})
    assert ours.parts_from == {name: name for name in heads} and ours.meta.source_prefix == 'backbone.'
    pretraining = canonicalize({'state_dict': {f'mae.{k}': v for k, v in mae.state_dict().items()}, 'meta': {}})
    assert pretraining.parts == {} and pretraining.decoder and pretraining.meta.had_decoder


def test_parts_under_the_prefix_option_are_named_from_it_and_parts_from_names_the_file(mae):
    """mmengine's Pretrained `prefix` option: keys outside it are neither encoder nor parts (only dropped); the
    parts keep their names below it, and `parts_from` gives each one's key in the file."""
    inner = {**{f'backbone.{k}': v for k, v in encoder_keys(mae).items()},
             'neck.conv.weight': torch.ones(2), 'decode_head.conv_seg.weight': torch.ones(3)}
    file = {'state_dict': {**{f'model.{k}': v for k, v in inner.items()}, 'ema.neck.conv.weight': torch.zeros(2)}}
    result = canonicalize(file, prefix='model')
    assert result.parts_from == {'neck.conv.weight': 'model.neck.conv.weight',
                                 'decode_head.conv_seg.weight': 'model.decode_head.conv_seg.weight'}
    assert result.parts['neck.conv.weight'] is inner['neck.conv.weight']
    assert 'ema.neck.conv.weight' in result.dropped and 'model.neck.conv.weight' in result.dropped
