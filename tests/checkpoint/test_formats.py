"""Checkpoints in every supported format convert to the canonical encoder and give identical features.

Each format's file is built from a randomly initialised tiny model by renaming its keys to that format's
real scheme (the small writers below are the inverse of the converters, written independently from the
formats' own code), then read back with `load_pretrained_encoder`. A new format adds its writer to `CASES`.
"""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.vit_checkpoints import (DEPTH, EMBED, HEADS, IMG, StateDict, encoder_keys, features, official_pretrain,
                                     reference, sample_images, save, small_mae)

from mae_transfer.checkpoint import (UnknownCheckpointFormatError, UnsafeCheckpointError, convert_state_dict,
                                     load_pretrained_encoder)
from mae_transfer.models.mae import MaskedAutoencoderViT

REPO = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------------------------------------
# Writers: our scheme -> each format's scheme
# ----------------------------------------------------------------------------------------------------------

def to_mmpretrain(encoder: StateDict) -> StateDict:
    """Canonical -> mmpretrain VisionTransformer names (without the `backbone.` prefix)."""
    top = {'patch_embed.proj': 'patch_embed.projection', 'norm': 'ln1'}
    block = {'norm1': 'ln1', 'norm2': 'ln2', 'mlp.fc1': 'ffn.layers.0.0', 'mlp.fc2': 'ffn.layers.1',
             'attn.qkv': 'attn.qkv', 'attn.proj': 'attn.proj'}
    out = {}
    for key, value in encoder.items():
        module, _, param = key.rpartition('.')
        if key.startswith('blocks.'):
            _, index, rest = module.split('.', 2)
            out[f'layers.{index}.{block[rest]}.{param}'] = value
        elif module in top:
            out[f'{top[module]}.{param}'] = value
        else:
            out[key] = value
    return out


def to_huggingface(encoder: StateDict) -> StateDict:
    """Canonical -> transformers ViTMAEModel / ViTModel names; qkv split into query, key, value."""
    top = {'cls_token': 'embeddings.cls_token', 'pos_embed': 'embeddings.position_embeddings',
           'patch_embed.proj.weight': 'embeddings.patch_embeddings.projection.weight',
           'patch_embed.proj.bias': 'embeddings.patch_embeddings.projection.bias',
           'norm.weight': 'layernorm.weight', 'norm.bias': 'layernorm.bias'}
    block = {'norm1': 'layernorm_before', 'attn.proj': 'attention.output.dense', 'norm2': 'layernorm_after',
             'mlp.fc1': 'intermediate.dense', 'mlp.fc2': 'output.dense'}
    out = {}
    for key, value in encoder.items():
        if key in top:
            out[top[key]] = value
            continue
        module, _, param = key.rpartition('.')
        _, index, rest = module.split('.', 2)
        if rest == 'attn.qkv':
            for name, part in zip(('query', 'key', 'value'), value.chunk(3, dim=0)):
                out[f'encoder.layer.{index}.attention.attention.{name}.{param}'] = part.clone()
        else:
            out[f'encoder.layer.{index}.{block[rest]}.{param}'] = value
    return out


def prefixed(state_dict: StateDict, prefix: str) -> StateDict:
    return {prefix + k: v for k, v in state_dict.items()}


def official_visualize(mae):
    return {'model': mae.state_dict(), 'epoch': 799}


def ours_pretrain(mae):
    return {'state_dict': prefixed(mae.state_dict(), 'mae.'), 'meta': {'epoch': 3, 'iter': 30}}


def ours_downstream(mae):
    state = prefixed(encoder_keys(mae), 'backbone.')
    state.update({'neck.lateral.0.weight': torch.ones(4, 4), 'roi_head.bbox_head.fc_cls.weight': torch.ones(3, 4)})
    return {'state_dict': state, 'meta': {}}


def timm_with_head(mae):
    return {**encoder_keys(mae), 'head.weight': torch.ones(10, EMBED), 'head.bias': torch.zeros(10)}


def mmpretrain_mae(mae):
    decoder = {'neck.' + k: v for k, v in mae.state_dict().items() if k.startswith(('decoder_', 'mask_token'))}
    return {'state_dict': {**prefixed(to_mmpretrain(encoder_keys(mae)), 'backbone.'), **decoder}, 'meta': {}}


def mmpretrain_classifier(mae):
    state = prefixed(to_mmpretrain(encoder_keys(mae)), 'backbone.')
    state.update({'head.layers.head.weight': torch.ones(10, EMBED), 'head.layers.head.bias': torch.zeros(10)})
    return {'state_dict': state}


def hf_vitmae_model(mae):
    return to_huggingface(encoder_keys(mae))


def hf_vitmae_pretraining(mae):
    decoder = {'decoder.decoder_embed.weight': torch.ones(32, EMBED), 'decoder.mask_token': torch.zeros(1, 1, 32),
               'decoder.decoder_layers.0.layernorm_before.weight': torch.ones(32)}
    return {**prefixed(to_huggingface(encoder_keys(mae)), 'vit.'), **decoder}


def hf_vit_classifier(mae):
    return {**prefixed(to_huggingface(encoder_keys(mae)), 'vit.'), 'classifier.weight': torch.ones(10, EMBED),
            'classifier.bias': torch.zeros(10)}


CASES = {
    'official_pretrain': (official_pretrain, 'mae_pretrain.pth', 'official_mae', set()),
    'official_visualize': (official_visualize, 'mae_visualize.pth', 'official_mae', {'decoder'}),
    'ours_pretrain': (ours_pretrain, 'iter_30.pth', 'mae_transfer', {'decoder'}),
    'ours_downstream': (ours_downstream, 'mask_rcnn.pth', 'mae_transfer', {'head'}),  # + an FPN neck
    'timm_pth': (timm_with_head, 'vit.pth', 'timm', {'head'}),
    'timm_bin': (timm_with_head, 'pytorch_model.bin', 'timm', {'head'}),
    'timm_safetensors': (timm_with_head, 'vit.safetensors', 'timm', {'head'}),
    'mmpretrain_mae': (mmpretrain_mae, 'mmpretrain_mae.pth', 'mmpretrain', {'decoder'}),
    'mmpretrain_classifier': (mmpretrain_classifier, 'mmpretrain_vit.pth', 'mmpretrain', {'head'}),
    'hf_vitmae_model': (hf_vitmae_model, 'model.safetensors', 'huggingface', set()),
    'hf_vitmae_pretraining': (hf_vitmae_pretraining, 'pytorch_model.bin', 'huggingface', {'decoder'}),
    'hf_vit_classifier': (hf_vit_classifier, 'hf_vit.safetensors', 'huggingface', {'head'}),
}


@pytest.fixture(scope='module')
def mae() -> MaskedAutoencoderViT:
    return small_mae()


@pytest.mark.parametrize('case', sorted(CASES))
def test_every_format_converts_to_identical_features(case, mae, tmp_path):
    writer, filename, expected_format, dropped_kinds = CASES[case]
    path = save(writer(mae), tmp_path / filename)
    state_dict, meta = load_pretrained_encoder(path)

    assert meta.source_format == expected_format
    assert list(state_dict) == list(encoder_keys(mae))  # canonical names, canonical order, nothing else
    assert (meta.embed_dim, meta.depth, meta.patch_size, meta.grid_size, meta.img_size) == (
        EMBED, DEPTH, 16, (2, 2), (IMG, IMG))
    assert meta.arch is None and meta.num_heads is None  # a custom size: heads are not in the weights
    assert (meta.mlp_ratio, meta.qkv_bias, meta.has_final_norm) == (4.0, True, True)
    assert {kind for kind, flag in (('decoder', meta.had_decoder), ('head', meta.had_head)) if flag} == dropped_kinds
    assert torch.equal(features(state_dict, meta), reference(mae))


def test_timm_vision_transformer_loads_the_converted_weights(mae, tmp_path):
    from timm.models.vision_transformer import VisionTransformer

    state_dict, _ = load_pretrained_encoder(save(mmpretrain_mae(mae), tmp_path / 'mmpretrain.pth'))
    vit = VisionTransformer(img_size=IMG, patch_size=16, embed_dim=EMBED, depth=DEPTH, num_heads=HEADS,
                            num_classes=0).eval()
    vit.load_state_dict(state_dict, strict=True)
    with torch.no_grad():
        torch.testing.assert_close(vit.forward_features(sample_images((IMG, IMG))), reference(mae))


def test_fine_tuned_files_lose_fc_norm_and_head_and_say_there_is_no_final_norm(mae):
    """Official fine-tuned (global pool) and timm avg-pool files have fc_norm instead of the final norm."""
    encoder = {k: v for k, v in encoder_keys(mae).items() if not k.startswith('norm.')}
    heads = {'fc_norm.weight': torch.ones(EMBED), 'fc_norm.bias': torch.zeros(EMBED),
             'head.weight': torch.ones(10, EMBED), 'head.bias': torch.zeros(10)}
    for checkpoint in ({'model': {**encoder, **heads}}, {**encoder, **heads}):
        state_dict, meta = convert_state_dict(checkpoint)
        assert not meta.has_final_norm and meta.had_head and not meta.had_decoder
        assert sorted(meta.dropped_keys) == sorted(heads)
        assert state_dict.keys() == encoder.keys()
        assert all(torch.equal(state_dict[k], encoder[k]) for k in encoder)


def test_huggingface_directory_config_gives_heads_and_non_square_grid(tmp_path):
    mae = small_mae(img_size=(32, 48))  # 2 x 3 patches, random learned pos_embed: only config.json can tell
    directory = tmp_path / 'vit-mae-custom'
    directory.mkdir()
    save(hf_vitmae_model(mae), directory / 'model.safetensors')
    (directory / 'config.json').write_text(json.dumps(
        {'model_type': 'vit_mae', 'num_attention_heads': HEADS, 'image_size': [32, 48], 'patch_size': 16}))
    state_dict, meta = load_pretrained_encoder(directory)
    assert (meta.grid_size, meta.grid_source, meta.num_heads) == ((2, 3), 'metadata', HEADS)
    assert torch.equal(features(state_dict, meta), reference(mae, (32, 48)))


def test_unknown_and_unplaceable_files_are_refused_with_their_keys(tmp_path, mae):
    path = save({'state_dict': {'conv1.weight': torch.ones(8, 3, 3, 3), 'fc.bias': torch.ones(8)}},
                tmp_path / 'resnet.pth')
    with pytest.raises(UnknownCheckpointFormatError, match=r'cannot identify.*conv1\.weight'):
        load_pretrained_encoder(path)
    with pytest.raises(UnknownCheckpointFormatError, match='not a huggingface checkpoint'):
        convert_state_dict(official_pretrain(mae), format='huggingface')
    layer_scale = mmpretrain_mae(mae)
    layer_scale['state_dict']['backbone.layers.0.attn.gamma1.weight'] = torch.ones(EMBED)
    with pytest.raises(UnknownCheckpointFormatError, match='gamma1'):
        convert_state_dict(layer_scale)
    distilled = {**encoder_keys(mae), 'dist_token': torch.zeros(1, 1, EMBED)}  # DeiT: a second prefix token
    with pytest.raises(UnknownCheckpointFormatError, match='dist_token'):
        convert_state_dict({'model': distilled})


class Untrusted:
    """A class that is not on the allowlist: unpickling it could run code."""


def test_pickled_objects_are_refused_not_executed(tmp_path, mae):
    path = tmp_path / 'untrusted.pth'
    torch.save({'model': encoder_keys(mae), 'extra': Untrusted()}, path)
    with pytest.raises(UnsafeCheckpointError):
        load_pretrained_encoder(path)


# ----------------------------------------------------------------------------------------------------------
# Command line tools
# ----------------------------------------------------------------------------------------------------------

def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_convert_cli_writes_safetensors_and_reports_what_it_dropped(tmp_path, mae):
    src = save(mmpretrain_mae(mae), tmp_path / 'mmpretrain_mae.pth')
    before = src.read_bytes()
    dst = tmp_path / 'out' / 'vit.safetensors'
    result = subprocess.run([sys.executable, str(REPO / 'tools' / 'convert_checkpoint.py'), str(src), str(dst)],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert 'mmpretrain checkpoint' in result.stdout and 'grid 2x2' in result.stdout
    assert 'dropped 20 decoder keys: neck.decoder_blocks.* (12)' in result.stdout
    assert f'{len(encoder_keys(mae))} encoder tensors' in result.stdout
    assert src.read_bytes() == before and not list(dst.parent.glob('.*.tmp'))
    state_dict, meta = load_pretrained_encoder(dst)
    assert meta.source_format == 'mae_transfer' and meta.had_decoder
    assert torch.equal(features(state_dict, meta), reference(mae))


def test_convert_cli_refuses_unknown_files_and_its_own_source(tmp_path, capsys, mae):
    convert = load_tool('convert_checkpoint')
    src = save({'conv1.weight': torch.ones(8, 3, 3, 3)}, tmp_path / 'resnet.pth')
    assert convert.main([str(src), str(tmp_path / 'out.pth')]) == 2  # a user's fault: exit status 2
    assert 'cannot identify' in capsys.readouterr().err and not (tmp_path / 'out.pth').exists()
    vit = save(official_pretrain(mae), tmp_path / 'vit.pth')
    before = vit.read_bytes()
    assert convert.main([str(vit), str(vit)]) == 2
    assert vit.read_bytes() == before
    assert convert.main([str(vit), str(tmp_path / 'vit_encoder.pth')]) == 0
    state_dict, meta = load_pretrained_encoder(tmp_path / 'vit_encoder.pth')
    assert meta.source_format == 'mae_transfer' and torch.equal(features(state_dict, meta), reference(mae))
