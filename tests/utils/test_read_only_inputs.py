"""Reading a checkpoint, an annotation file or an image folder writes nothing beside it: the folder is made
read-only (which stops writes unless the tests run as root) and its listing with sizes and mtimes is compared
before and after, which catches a write as root too."""
import os

from helpers.vit_checkpoints import encoder_keys, official_pretrain, save, small_mae
from PIL import Image

from mae_transfer.checkpoint import load_pretrained_encoder
from mae_transfer.datasets import ClassFolderDataset, UnlabeledImageFolder, generate_pose_dataset
from mae_transfer.utils.annotation_checks import load_coco_quietly


def _snapshot(folder):
    return sorted((str(path.relative_to(folder)), path.stat().st_size, path.stat().st_mtime_ns)
                  for path in [folder, *folder.rglob('*')])


def test_reading_inputs_writes_nothing_beside_them(tmp_path):
    mae = small_mae()
    save(official_pretrain(mae), tmp_path / 'mae_pretrain.pth')  # the official MAE layout, torch.save
    save(encoder_keys(mae), tmp_path / 'vit.safetensors')  # timm names, safetensors
    files = generate_pose_dataset(tmp_path / 'pose', num_train=2, num_val=1, size_range=(32, 40), max_persons=1)
    for name in ('a', 'b'):
        (tmp_path / 'classes' / name).mkdir(parents=True)
        Image.new('RGB', (20, 20), (10, 200, 30)).save(tmp_path / 'classes' / name / 'x.png')
    before = _snapshot(tmp_path)
    folders = [tmp_path, *(path for path in tmp_path.rglob('*') if path.is_dir())]
    for folder in folders:
        os.chmod(folder, 0o555)
    try:
        for checkpoint in ('mae_pretrain.pth', 'vit.safetensors'):
            state_dict, _ = load_pretrained_encoder(tmp_path / checkpoint)
            assert list(state_dict) == list(encoder_keys(mae))
        assert len(load_coco_quietly(files['train']).getImgIds()) == 2
        assert UnlabeledImageFolder(tmp_path / 'classes', crop_size=8)[0]['inputs'].shape == (3, 8, 8)
        assert ClassFolderDataset(tmp_path / 'classes', transform=dict(input_size=8))[1]['data_samples'] == 1
    finally:
        for folder in folders:
            os.chmod(folder, 0o755)
    assert _snapshot(tmp_path) == before
