"""The model zoo and the resumable, verified download, against a loopback HTTP server."""
import functools
import hashlib
import http.server
import importlib.util
import io
import threading
from pathlib import Path
from typing import Optional

import pytest
import torch
from helpers.vit_checkpoints import features, official_pretrain, reference, small_mae

from mae_transfer.checkpoint import (MODEL_ZOO, ChecksumMismatch, DownloadInterrupted, fetch_checkpoint,
                                     load_pretrained_encoder)
from mae_transfer.checkpoint.download import part_path

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def mae():
    return small_mae()


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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

