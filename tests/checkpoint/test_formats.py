"""Checkpoints in every supported format convert to the canonical encoder and give identical features.

Each format's file is built from a randomly initialised tiny model by renaming its keys to that format's
real scheme (the small writers below are the inverse of the converters, written independently from the
formats' own code), then read back with `load_pretrained_encoder`. A new format adds its writer to `CASES`.
The registry (`formats/__init__.py`) is checked below them: detection does not depend on the order the formats
were registered in, a user's format registers from its own module, and mmdet's ViTDet release maps onto our
detector key for key.
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

from mae_transfer.checkpoint import (UnknownCheckpointFormatError, UnsafeCheckpointError, canonicalize,
                                     convert_state_dict, formats, load_pretrained_encoder)
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
    with pytest.raises(UnknownCheckpointFormatError, match='cannot identify'):  # a user's fault: status 2
        convert.main([str(src), str(tmp_path / 'out.pth')])
    assert not (tmp_path / 'out.pth').exists()
    vit = save(official_pretrain(mae), tmp_path / 'vit.pth')
    before = vit.read_bytes()
    with pytest.raises(SystemExit, match='is the source file'):
        convert.main([str(vit), str(vit)])
    assert vit.read_bytes() == before
    assert convert.main([str(vit), str(tmp_path / 'vit_encoder.pth')]) == 0
    state_dict, meta = load_pretrained_encoder(tmp_path / 'vit_encoder.pth')
    assert meta.source_format == 'mae_transfer' and torch.equal(features(state_dict, meta), reference(mae))


# ----------------------------------------------------------------------------------------------------------
# The registry: one record per format, detection that does not depend on the order of registration
# ----------------------------------------------------------------------------------------------------------

def without(state: StateDict, *names: str) -> StateDict:
    return {k: v for k, v in state.items() if k not in names}


def vitpose_released(mae):
    """ViTPose (mmpose 0.x): canonical blocks under `backbone.`, `last_norm`, no cls token, `keypoint_head`."""
    encoder = {('last_norm.' + k[len('norm.'):] if k.startswith('norm.') else k): v
               for k, v in without(encoder_keys(mae), 'cls_token').items()}
    return {'state_dict': {**prefixed(encoder, 'backbone.'), 'keypoint_head.final_layer.weight': torch.ones(17, 8)}}


def mmpose_vitpose(mae):
    """mmpose 1.x ViTPose: mmpretrain names, no cls token, pos_embed without its cls row, head.* ours already."""
    encoder = to_mmpretrain(without(encoder_keys(mae), 'cls_token'))
    encoder['pos_embed'] = encoder['pos_embed'][:, 1:]
    return {'state_dict': {**prefixed(encoder, 'backbone.'), 'head.final_layer.weight': torch.ones(17, 8)}}


def mmseg_beit(mae):
    state = mmpretrain_classifier(mae)['state_dict']
    return {'state_dict': {**state, **{f'backbone.layers.{i}.gamma_1': torch.ones(EMBED) for i in range(DEPTH)},
                           **{f'backbone.layers.{i}.gamma_2': torch.ones(EMBED) for i in range(DEPTH)}}}


def detectron2_released(mae):
    """detectron2's layout (tensors instead of the numpy arrays of a `.pkl`): ViT under `backbone.net.`."""
    state = prefixed(without(encoder_keys(mae), 'cls_token', 'norm.weight', 'norm.bias'), 'backbone.net.')
    return {**state, 'backbone.simfp_4.0.weight': torch.ones(8, EMBED, 1, 1),
            'roi_heads.box_predictor.cls_score.weight': torch.ones(4, 8)}


def detectron2_read(mae):
    """What the detectron2 reader gives: the ViT under `backbone.`, beside detectron2's own heads."""
    return {'state_dict': {**prefixed(encoder_keys(mae), 'backbone.'), 'neck.stems.2.weight': torch.ones(1),
                           'proposal_generator.rpn_head.conv.weight': torch.ones(8, 8, 3, 3)}}


def mmdet_vitdet(mae):
    state = prefixed(without(encoder_keys(mae), 'cls_token', 'norm.weight', 'norm.bias'), 'backbone.')
    return {'state_dict': {**state, 'neck.fpn1.0.weight': torch.ones(EMBED, 32, 2, 2),
                           'neck.lateral_convs.0.conv.weight': torch.ones(8, 16, 1, 1),
                           'roi_head.mask_head.convs.0.norm_layer.weight': torch.ones(8)}}


# file -> (writer, format family it is)
FAMILIES = {
    **{case: (writer, 'canonical' if label in ('official_mae', 'mae_transfer', 'timm') else label)
       for case, (writer, _, label, _) in CASES.items()},
    'official_finetuned': (lambda mae: {'model': {**encoder_keys(mae), 'head.weight': torch.ones(10, EMBED)}},
                           'canonical'),
    'vitpose': (vitpose_released, 'vitpose'),
    'mmpose_vitpose': (mmpose_vitpose, 'mmpose_vitpose'),
    'mmseg_beit': (mmseg_beit, 'mmseg_beit'),
    'detectron2_released': (detectron2_released, 'detectron2'),
    'detectron2_read': (detectron2_read, 'detectron2'),
    'mmdet_vitdet': (mmdet_vitdet, 'mmdet_vitdet'),
}


# file -> `Canonical.parts_from` (our whole-model name -> the key in the file) of what it holds beside the encoder
HEAD = {'head.weight': 'head.weight', 'head.bias': 'head.bias'}
MMPRETRAIN_HEAD = {f'head.layers.head.{p}': f'head.layers.head.{p}' for p in ('weight', 'bias')}
PARTS = {
    **{case: {} for case in ('official_pretrain', 'official_visualize', 'ours_pretrain', 'mmpretrain_mae',
                             'hf_vitmae_model', 'hf_vitmae_pretraining')},  # an MAE decoder is no part
    'ours_downstream': {'neck.lateral.0.weight': 'neck.lateral.0.weight',
                        'roi_head.bbox_head.fc_cls.weight': 'roi_head.bbox_head.fc_cls.weight'},
    **{case: HEAD for case in ('timm_pth', 'timm_bin', 'timm_safetensors')},  # heads at the encoder's prefix
    'official_finetuned': {'head.weight': 'head.weight'},
    'mmpretrain_classifier': MMPRETRAIN_HEAD, 'mmseg_beit': MMPRETRAIN_HEAD,
    'hf_vit_classifier': {'head.weight': 'classifier.weight', 'head.bias': 'classifier.bias'},
    'vitpose': {'head.final_layer.weight': 'keypoint_head.final_layer.weight'},
    'mmpose_vitpose': {'head.final_layer.weight': 'head.final_layer.weight'},
    'detectron2_released': {'neck.lateral_convs.2.0.weight': 'backbone.simfp_4.0.weight',
                            'roi_head.bbox_head.fc_cls.weight': 'roi_heads.box_predictor.cls_score.weight'},
    'detectron2_read': {'neck.stems.2.weight': 'neck.stems.2.weight',
                        'rpn_head.rpn_conv.weight': 'proposal_generator.rpn_head.conv.weight'},
    'mmdet_vitdet': {'neck.stems.0.0.weight': 'neck.fpn1.0.weight',
                     'neck.lateral_convs.0.0.weight': 'neck.lateral_convs.0.conv.weight',
                     'roi_head.mask_head.convs.0.ln.weight': 'roi_head.mask_head.convs.0.norm_layer.weight'},
}


@pytest.mark.parametrize('case', sorted(FAMILIES))
def test_parts_are_the_necks_and_heads_in_our_whole_model_layout(case, mae):
    checkpoint = FAMILIES[case][0](mae)
    state_dict, _ = formats.unwrap_checkpoint(checkpoint)
    result = canonicalize(checkpoint)
    assert result.parts_from == PARTS[case] and list(result.parts) == list(result.parts_from)
    assert all(result.parts[ours] is state_dict[theirs] for ours, theirs in result.parts_from.items())
    assert set(result.parts_from.values()) <= set(result.dropped)  # `dropped` still lists everything left out


def tensor_keys(checkpoint) -> list:
    state_dict, _ = formats.unwrap_checkpoint(checkpoint)
    return [key for key, value in state_dict.items() if isinstance(value, torch.Tensor)]


@pytest.mark.parametrize('order', ['as registered', 'reversed'])
def test_detection_does_not_depend_on_the_order_of_registration(order, mae, monkeypatch):
    if order == 'reversed':
        monkeypatch.setattr(formats, 'FORMATS', dict(reversed(list(formats.FORMATS.items()))))
    for case, (writer, family) in FAMILIES.items():
        found = formats.detect(tensor_keys(writer(mae)))
        assert found is not None and found[0].name == family, case
        assert formats.detect_scheme(tensor_keys(writer(mae)))[0] == family


def test_every_family_converts_and_names_itself(mae):
    qkv = encoder_keys(mae)['blocks.1.attn.qkv.weight']
    for case, (writer, family) in FAMILIES.items():
        result = canonicalize(writer(mae))
        assert result.meta.source_format in formats.FORMATS[family].labels, case
        assert torch.equal(result.encoder['blocks.1.attn.qkv.weight'], qkv), case


def test_formats_of_equal_priority_that_both_match_are_an_error_not_a_coin_toss(mae, monkeypatch):
    monkeypatch.setattr(formats, 'FORMATS', dict(formats.FORMATS))
    twin = formats.FORMATS['vitpose']
    formats.register_format(formats.CheckpointFormat(name='vitpose_twin', marker=twin.marker, rename=twin.rename,
                                                     matches=twin.matches, priority=twin.priority))
    with pytest.raises(UnknownCheckpointFormatError, match="fits the formats.*vitpose.*equally"):
        formats.detect(tensor_keys(vitpose_released(mae)))
    assert formats.detect_scheme(tensor_keys(official_pretrain(mae))) == ('canonical', '')


def test_register_format_refuses_a_taken_name_label_or_suffix():
    canonical = formats.FORMATS['canonical']
    for clash in (dict(name='canonical'), dict(name='mine', labels=('timm',)),
                  dict(name='mine', read=lambda path: {}, suffixes=('.pkl',))):
        with pytest.raises(ValueError, match='already belongs to format'):
            formats.register_format(formats.CheckpointFormat(**{'marker': 'x.weight', 'rename': canonical.rename,
                                                                **clash}))
    assert formats.reader_for('model_final_f05665.pkl') is formats.load_detectron2_checkpoint
    assert formats.reader_for('vit.pth') is None and 'mine' not in formats.FORMATS


# the format of docs/EXTENDING.md ("A new checkpoint format"), written as a user's own module would
MYLAB_TOP = {'stem.proj.weight': 'patch_embed.proj.weight', 'stem.proj.bias': 'patch_embed.proj.bias',
             'stem.cls': 'cls_token', 'stem.pos': 'pos_embed', 'final_ln.weight': 'norm.weight',
             'final_ln.bias': 'norm.bias'}
MYLAB_BLOCK = {'ln1': 'norm1', 'attn.qkv': 'attn.qkv', 'attn.out': 'attn.proj', 'ln2': 'norm2',
               'mlp.fc1': 'mlp.fc1', 'mlp.fc2': 'mlp.fc2'}


def rename_mylab(state_dict, prefix):
    import re
    result, unplaced = formats.EncoderKeys(), []
    for key, name, value in formats.under_prefix(state_dict, prefix, result.dropped):
        layer = re.match(r'^layers\.(\d+)\.(.+)\.(weight|bias)$', name)
        if name in MYLAB_TOP:
            result.state_dict[MYLAB_TOP[name]] = value
        elif layer and layer.group(2) in MYLAB_BLOCK:
            result.state_dict[f'blocks.{layer.group(1)}.{MYLAB_BLOCK[layer.group(2)]}.{layer.group(3)}'] = value
        else:
            unplaced.append(key)
    formats.refuse_unplaced(unplaced, 'mylab')
    return result


def to_mylab(encoder: StateDict) -> StateDict:
    top = {ours: theirs for theirs, ours in MYLAB_TOP.items()}
    block = {ours: theirs for theirs, ours in MYLAB_BLOCK.items()}
    out = {}
    for key, value in encoder.items():
        if key in top:
            out[top[key]] = value
        else:
            _, index, rest = key.split('.', 2)
            module, _, param = rest.rpartition('.')
            out[f'layers.{index}.{block[module]}.{param}'] = value
    return out


def test_a_format_registered_by_its_own_module_converts_to_identical_features(mae, monkeypatch):
    monkeypatch.setattr(formats, 'FORMATS', dict(formats.FORMATS))  # this test's registration ends with it
    formats.register_format(formats.CheckpointFormat(
        name='mylab', marker='stem.proj.weight', rename=rename_mylab,
        whole_model=lambda parts: formats.rename_prefixes(parts, {'cls_head.': 'head.'})))
    file = {'model': {**prefixed(to_mylab(encoder_keys(mae)), 'encoder.'), 'cls_head.weight': torch.ones(10, EMBED)}}
    result = canonicalize(file)
    assert (result.meta.source_format, result.meta.source_prefix) == ('mylab', 'encoder.')
    assert torch.equal(features(result.encoder, result.meta), reference(mae))
    assert list(result.parts) == ['head.weight'] and result.parts_from == {'head.weight': 'cls_head.weight'}
    assert 'mylab' in formats.format_labels() and convert_state_dict(file, format='mylab')[1].depth == DEPTH


# ----------------------------------------------------------------------------------------------------------
# mmdet's ViTDet release (projects/ViTDet) -> our tiny detector, key for key
# ----------------------------------------------------------------------------------------------------------

DET_TINY = REPO / 'configs' / 'det' / 'mask-rcnn_vit-tiny-p16_1xb4-lsj-600i_synthetic-128x128.py'


def test_mmdet_vitdet_keys_land_on_our_detector_with_the_same_shapes():
    """The project's Mask R-CNN (tests/helpers/mmdet_vitdet.py, built at our tiny det config's sizes): every key
    converts onto a key of our detector of the same shape, and covers all of it but the final norm the project's
    ViT does not have."""
    pytest.importorskip('mmdet')
    from helpers import mmdet_vitdet as reference_project

    from mae_transfer.utils.configs import build_model

    ours = build_model(DET_TINY).state_dict()
    channels = ours['neck.output_convs.0.0.weight'].shape[0]
    classes = ours['roi_head.bbox_head.fc_cls.weight'].shape[0] - 1  # + background
    cfg = reference_project.reference_model_cfg('tiny', num_classes=classes, embed_dim=192, depth=4, num_heads=3,
                                                window_block_indexes=(0, 2), img_size=128, pretrain_img_size=128)
    cfg['neck']['out_channels'] = cfg['rpn_head']['in_channels'] = cfg['rpn_head']['feat_channels'] = channels
    roi = cfg['roi_head']
    roi['bbox_roi_extractor']['out_channels'] = roi['mask_roi_extractor']['out_channels'] = channels
    roi['bbox_head'].update(in_channels=channels, conv_out_channels=channels, fc_out_channels=256)
    roi['mask_head'].update(in_channels=channels, conv_out_channels=channels)
    theirs = reference_project.build_reference_detector(cfg, init_weights=False).state_dict()
    assert any('.norm_layer.' in key for key in theirs) and 'backbone.cls_token' not in theirs

    result = canonicalize({'state_dict': theirs, 'meta': {}})
    assert (result.meta.source_format, result.meta.source_prefix) == ('mmdet_vitdet', 'backbone.')
    converted = {**{'backbone.' + k: v for k, v in result.encoder.items()}, **result.parts}
    wrong = {k: (tuple(v.shape), tuple(ours[k].shape) if k in ours else None) for k, v in converted.items()
             if k not in ours or ours[k].shape != v.shape}
    assert not wrong
    assert set(ours) - set(converted) == {'backbone.norm.weight', 'backbone.norm.bias'}
    assert len(converted) == len(theirs) + 1  # + the zero cls token
    assert result.parts_from['neck.output_convs.3.1.bias'] == 'neck.fpn_convs.3.norm_layer.bias'
    assert result.parts_from['roi_head.mask_head.convs.3.ln.weight'] == 'roi_head.mask_head.convs.3.norm_layer.weight'
    assert all(result.parts[k] is theirs[v] for k, v in result.parts_from.items())
