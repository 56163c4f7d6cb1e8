"""Checkpoints in every supported format convert to the canonical encoder and give identical features.

Each format's file is built from a randomly initialised tiny model by renaming its keys to that format's
real scheme (the small writers below are the inverse of the converters, written independently from the
formats' own code), then read back with `load_pretrained_encoder`.
"""
import argparse
import functools
import hashlib
import http.server
import importlib.util
import io
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Dict, Optional, Tuple

import pytest
import torch
from safetensors.torch import save_file

from mae_transfer.checkpoint import (CheckpointMeta, UnknownCheckpointFormatError, convert_state_dict,
                                     load_pretrained_encoder, save_encoder_checkpoint)
from mae_transfer.checkpoint_zoo import MODEL_ZOO, fetch_checkpoint
from mae_transfer.engine.safe_load import UnsafeCheckpointError
from mae_transfer.models.mae import MaskedAutoencoderViT, mae_vit_tiny_patch16
from mae_transfer.models.layers.vit import ViTEncoder
from mae_transfer.utils.download import ChecksumMismatch, DownloadInterrupted, part_path

REPO = Path(__file__).resolve().parents[1]
StateDict = Dict[str, torch.Tensor]
EMBED, DEPTH, HEADS, IMG = 64, 2, 2, 32


def small_mae(img_size=IMG, seed: int = 0, learned_pos: bool = True) -> MaskedAutoencoderViT:
    """A tiny MAE with random weights everywhere (norms included, so a swapped norm shows up); the encoder's
    pos_embed is random too unless `learned_pos` is False (then MAE's fixed sin-cos table)."""
    torch.manual_seed(seed)
    model = MaskedAutoencoderViT(img_size=img_size, patch_size=16, embed_dim=EMBED, depth=DEPTH, num_heads=HEADS,
                                 decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name != 'pos_embed' or learned_pos:
                param.normal_(0.0, 0.3)
    return model.eval()


def encoder_keys(model: torch.nn.Module) -> StateDict:
    return {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(('decoder_', 'mask_token'))}


def features(state_dict: StateDict, meta: CheckpointMeta, num_heads: int = HEADS,
             img: Optional[torch.Tensor] = None) -> torch.Tensor:
    """forward_features of a fresh ViTEncoder built from `meta` and loaded strictly with `state_dict`."""
    encoder = ViTEncoder(img_size=meta.img_size, patch_size=meta.patch_size, embed_dim=meta.embed_dim,
                         depth=meta.depth, num_heads=meta.num_heads or num_heads, mlp_ratio=meta.mlp_ratio,
                         qkv_bias=meta.qkv_bias).eval()
    encoder.load_state_dict(state_dict, strict=True)
    with torch.no_grad():
        return encoder.forward_features(img if img is not None else sample_images(meta.img_size))


def sample_images(img_size: Tuple[int, int]) -> torch.Tensor:
    return torch.randn(2, 3, *img_size, generator=torch.Generator().manual_seed(1))


def reference(model: torch.nn.Module, img_size=(IMG, IMG)) -> torch.Tensor:
    with torch.no_grad():
        return model.forward_features(sample_images(img_size))


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


def official_pretrain(mae):
    return {'model': encoder_keys(mae), 'args': argparse.Namespace(model='mae_vit_tiny', input_size=IMG)}


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


def save(checkpoint, path: Path) -> Path:
    if path.suffix == '.safetensors':
        save_file({k: v.contiguous() for k, v in checkpoint.items()}, str(path))
    else:
        torch.save(checkpoint, path)
    return path


# (writer, file name, expected format, expected dropped kinds)
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


def test_meta_of_a_named_arch_and_of_the_sincos_grid(tmp_path):
    torch.manual_seed(0)
    tiny = mae_vit_tiny_patch16(img_size=IMG).eval()  # 192-d x 4 blocks x 3 heads, fixed sin-cos pos_embed
    state_dict, meta = load_pretrained_encoder(save(official_visualize(tiny), tmp_path / 'tiny.pth'))
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


def test_safetensors_beside_a_pth_is_preferred(tmp_path):
    first, second = small_mae(seed=1), small_mae(seed=2)
    save(official_pretrain(first), tmp_path / 'weights.pth')
    save(timm_with_head(second), tmp_path / 'weights.safetensors')
    from_pth_name, meta = load_pretrained_encoder(tmp_path / 'weights.pth')
    assert meta.source_format == 'timm' and torch.equal(from_pth_name['cls_token'], second.cls_token)
    from_stem, _ = load_pretrained_encoder(tmp_path / 'weights')
    assert torch.equal(from_stem['cls_token'], second.cls_token)
    exact, meta = load_pretrained_encoder(tmp_path / 'weights.pth', prefer_safetensors=False)
    assert meta.source_format == 'official_mae' and torch.equal(exact['cls_token'], first.cls_token)


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
    assert convert.main([str(src), str(tmp_path / 'out.pth')]) == 1
    assert 'cannot identify' in capsys.readouterr().err and not (tmp_path / 'out.pth').exists()
    vit = save(official_pretrain(mae), tmp_path / 'vit.pth')
    before = vit.read_bytes()
    assert convert.main([str(vit), str(vit)]) == 2
    assert vit.read_bytes() == before
    assert convert.main([str(vit), str(tmp_path / 'vit_encoder.pth')]) == 0
    state_dict, meta = load_pretrained_encoder(tmp_path / 'vit_encoder.pth')
    assert meta.source_format == 'mae_transfer' and torch.equal(features(state_dict, meta), reference(mae))


# ----------------------------------------------------------------------------------------------------------
# Download with resume, against a loopback HTTP server
# ----------------------------------------------------------------------------------------------------------

class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves `payload` with Range support; `break_after` bytes only, once, to simulate a dropped link."""
    payload = b''
    break_after: Optional[int] = None
    ranges: list = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        cls = type(self)
        requested = self.headers.get('Range')
        cls.ranges.append(requested)
        start = int(requested.split('=')[1].split('-')[0]) if requested else 0
        body = cls.payload[start:]
        self.send_response(206 if requested else 200)
        if requested:
            self.send_header('Content-Range', f'bytes {start}-{len(cls.payload) - 1}/{len(cls.payload)}')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        if cls.break_after is not None:
            body, cls.break_after = body[:cls.break_after], None  # HTTP/1.0: the connection closes after this
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(mae):
    buffer = io.BytesIO()
    torch.save(official_pretrain(mae), buffer)
    handler = type('Handler', (RangeHandler,), {'payload': buffer.getvalue(), 'ranges': [], 'break_after': None})
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield handler, f'http://127.0.0.1:{httpd.server_address[1]}/mae_pretrain_vit_base.pth'
    httpd.shutdown()
    httpd.server_close()


def test_download_resumes_a_broken_transfer_verifies_and_converts(server, tmp_path, mae):
    handler, url = server
    payload = handler.payload
    digest = hashlib.sha256(payload).hexdigest()
    half = len(payload) // 2
    handler.break_after = half
    fetch = functools.partial(fetch_checkpoint, 'mae_pretrain_vit_base', tmp_path, url_override=url,
                              progress=False, retries=0)
    with pytest.raises(DownloadInterrupted, match='resume'):
        fetch()
    dest = tmp_path / 'mae_pretrain_vit_base.pth'
    assert part_path(dest).stat().st_size == half and not dest.exists()

    raw, converted, meta = fetch(sha256=digest)
    assert handler.ranges == [None, f'bytes={half}-']
    assert raw == dest and raw.read_bytes() == payload and not part_path(dest).exists()
    assert converted == tmp_path / 'mae_pretrain_vit_base.safetensors' and meta.source_format == 'official_mae'
    state_dict, meta = load_pretrained_encoder(dest)  # the converted sibling is read
    assert meta.source_format == 'mae_transfer'
    assert torch.equal(features(state_dict, meta), reference(mae))


def test_download_tool_retries_by_itself_and_rejects_a_wrong_digest(server, tmp_path, capsys):
    handler, url = server
    download = load_tool('download_checkpoint')
    handler.break_after = 1000
    args = ['mae_visualize_vit_large', '--dest', str(tmp_path / 'a'), '--url-override', url, '--no-progress']
    assert download.main(args) == 0
    assert handler.ranges == [None, 'bytes=1000-']
    assert (tmp_path / 'a' / 'mae_visualize_vit_large.pth').read_bytes() == handler.payload
    assert 'official_mae checkpoint' in capsys.readouterr().out

    wrong = ['mae_pretrain_vit_huge', '--dest', str(tmp_path / 'b'), '--url-override', url, '--sha256', '0' * 64,
             '--no-progress']
    assert download.main(wrong) == 1
    assert 'does not match' in capsys.readouterr().err
    assert not list((tmp_path / 'b').iterdir())  # neither the file nor its .part is kept
    with pytest.raises(ChecksumMismatch):
        fetch_checkpoint('mae_pretrain_vit_huge', tmp_path / 'b', url_override=url, sha256='0' * 64,
                         progress=False)


def test_zoo_lists_the_official_weights():
    for arch, patch in (('base', 16), ('large', 16), ('huge', 14)):
        for kind in ('pretrain', 'visualize'):
            entry = MODEL_ZOO[f'mae_{kind}_vit_{arch}']
            assert entry.url == f'https://dl.fbaipublicfiles.com/mae/{kind}/mae_{kind}_vit_{arch}.pth'
            assert (entry.arch, entry.patch_size, entry.sha256) == (arch, patch, None)
    readme = (REPO / 'checkpoints' / 'README.md').read_text()
    assert all(entry.url in readme for entry in MODEL_ZOO.values())

