"""Checkpoint files: which file is read, and writes that never leave a torn or half-written file."""
import torch
from helpers.vit_checkpoints import EMBED, encoder_keys, official_pretrain, save, small_mae

from mae_transfer.checkpoint import atomic_write, convert_state_dict, load_pretrained_encoder, save_encoder_checkpoint
from mae_transfer.checkpoint import files as checkpoint_files


def test_safetensors_beside_a_pth_is_preferred(tmp_path):
    first, second = small_mae(seed=1), small_mae(seed=2)
    save(official_pretrain(first), tmp_path / 'weights.pth')
    save({**encoder_keys(second), 'head.weight': torch.ones(10, EMBED), 'head.bias': torch.zeros(10)},
         tmp_path / 'weights.safetensors')
    from_pth_name, meta = load_pretrained_encoder(tmp_path / 'weights.pth')
    assert meta.source_format == 'timm' and torch.equal(from_pth_name['cls_token'], second.cls_token)
    from_stem, _ = load_pretrained_encoder(tmp_path / 'weights')
    assert torch.equal(from_stem['cls_token'], second.cls_token)
    exact, meta = load_pretrained_encoder(tmp_path / 'weights.pth', prefer_safetensors=False)
    assert meta.source_format == 'official_mae' and torch.equal(exact['cls_token'], first.cls_token)


def test_one_atomic_write_for_our_files_and_mmengine_saves(tmp_path, monkeypatch):
    """save_encoder_checkpoint and mmengine's LocalBackend (installed on import) both go through atomic_write:
    a failure while writing keeps the previous file and leaves no temporary file behind."""
    from mmengine.fileio.backends.local_backend import LocalBackend
    state_dict, meta = convert_state_dict(official_pretrain(small_mae()))
    calls = []
    real = checkpoint_files.atomic_write
    monkeypatch.setattr(checkpoint_files, 'atomic_write', lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    for name in ('encoder.pth', 'encoder.safetensors'):
        save_encoder_checkpoint(state_dict, meta, tmp_path / name)
    LocalBackend().put(b'checkpoint bytes', tmp_path / 'iter_1.pth')
    LocalBackend().put_text('iter_1.pth', tmp_path / 'last_checkpoint')
    assert [str(p) for p in calls] == [str(tmp_path / n) for n in ('encoder.pth', 'encoder.safetensors',
                                                                   'iter_1.pth', 'last_checkpoint')]

    def broken(tmp):
        with open(tmp, 'wb') as handle:
            handle.write(b'half a checkpoint')
        raise OSError('disk full')

    target = tmp_path / 'encoder.pth'
    before = target.read_bytes()
    try:
        atomic_write(broken, target)
    except OSError:
        pass
    assert target.read_bytes() == before
    assert not [p.name for p in tmp_path.iterdir() if '.tmp-' in p.name]
