"""A user's folder whose first files (in sorted order) cannot be decoded: pretraining still starts, the
reconstruction pictures use the first readable images, and every skipped file is named in the log."""
from mae_transfer.datasets.synthetic import generate_images
from mae_transfer.tools.train import main as train_main

TINY = 'pretrain/mae_vit-tiny-p16_1xb32-coslr-50e_synthetic-128x128.py'


def test_pretraining_starts_when_the_folder_begins_with_unreadable_files(tmp_path):
    folder = tmp_path / 'photos'
    generate_images(folder, num_images=6, seed=0)
    (folder / 'aaa_empty.jpg').write_bytes(b'')
    (folder / 'aab_text.png').write_text('not an image')
    work_dir = tmp_path / 'work'
    train_main([TINY, '--work-dir', str(work_dir), '--cfg-options', 'model.img_size=64', 'train_cfg.max_epochs=1',
                'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
                'train_dataloader.persistent_workers=False', f'train_dataloader.dataset.data_root={folder}',
                'train_dataloader.dataset.crop_size=64', 'custom_hooks.0.interval=2', 'custom_hooks.0.num_images=2'])
    assert (work_dir / 'reconstructions' / 'iter_2.png').is_file()  # 8 files / batch 4
    log = '\n'.join(path.read_text() for path in work_dir.rglob('*.log'))
    assert f'skipped unreadable image {folder / "aaa_empty.jpg"}' in log
    assert f'skipped unreadable image {folder / "aab_text.png"}' in log
