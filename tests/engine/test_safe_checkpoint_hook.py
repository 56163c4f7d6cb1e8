"""A checkpoint save that fails (an injected ENOSPC half-way through the write) keeps the previous checkpoint,
even with max_keep_ckpts=1, leaves no partial file, and stops training with the path and the free space."""
import errno

import pytest
import torch

from mae_transfer.checkpoint import files

from mae_transfer.datasets.synthetic import generate_images
from mae_transfer.engine import CheckpointSaveError
from mae_transfer.tools.train import main as train_main

TINY = 'pretrain/mae_vit-tiny-p16_1xb32-coslr-50e_synthetic-128x128.py'


def test_a_full_disk_keeps_the_previous_checkpoint_and_stops_training(tmp_path, monkeypatch):
    generate_images(tmp_path / 'images', num_images=4, seed=0)
    original_write = files.atomic_write

    def disk_full_at_epoch_2(data, path, encoding='utf-8'):
        if 'epoch_2' not in str(path):
            return original_write(data, path, encoding)

        def half_then_full(tmp):  # the disk fills up half-way through the write
            with open(tmp, 'wb') as handle:
                handle.write(data[:len(data) // 2])
            raise OSError(errno.ENOSPC, 'No space left on device')
        return original_write(half_then_full, path)

    monkeypatch.setattr(files, 'atomic_write', disk_full_at_epoch_2)
    work_dir = tmp_path / 'work'
    with pytest.raises(CheckpointSaveError) as failure:
        train_main([TINY, '--work-dir', str(work_dir), '--cfg-options', 'model.img_size=64', 'train_cfg.max_epochs=3',
                    'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
                    'train_dataloader.persistent_workers=False',
                    f'train_dataloader.dataset.data_root={tmp_path}/images', 'train_dataloader.dataset.crop_size=64',
                    'custom_hooks=[]', 'default_hooks.checkpoint.interval=1',
                    'default_hooks.checkpoint.max_keep_ckpts=1'])
    message = str(failure.value)
    assert f'could not write checkpoint {work_dir / "epoch_2.pth"}: No space left on device' in message
    assert 'MiB free there' in message and f'the previous checkpoint {work_dir / "epoch_1.pth"} is intact' in message
    # mmengine would have deleted epoch_1 before writing epoch_2 (max_keep_ckpts=1)
    assert not (work_dir / 'epoch_2.pth').exists() and not list(work_dir.glob('*.tmp-*'))
    assert torch.load(work_dir / 'epoch_1.pth', map_location='cpu', weights_only=True)['meta']['epoch'] == 1
    assert (work_dir / 'last_checkpoint').read_text() == str(work_dir / 'epoch_1.pth')
