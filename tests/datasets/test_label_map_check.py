"""Bad segmentation data through mmseg's BaseSegDataset, our CheckLabelMap and the tiny twin's pipelines.

Each fault gets a clear error naming the file, a logged skip, or correct handling, through the dataset
classes and pipelines of the tiny task config.
"""
import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from PIL import Image

from mae_transfer.datasets.synthetic.ade import generate_ade_dataset
from mae_transfer.utils.configs import CONFIG_ROOT

SEG_CONFIG = CONFIG_ROOT / 'seg' / 'upernet_vit-tiny-p16_1xb8-200i_synthetic-128x128.py'


@pytest.fixture
def seg_root(tmp_path):
    generate_ade_dataset(tmp_path, num_train=3, num_val=0, seed=0, size_range=(40, 70))
    return tmp_path


def seg_dataset(root: Path, split: str = 'train'):
    from mmseg.registry import DATASETS
    cfg = Config.fromfile(str(SEG_CONFIG))
    dataset_cfg = copy.deepcopy((cfg.train_dataloader if split == 'train' else cfg.val_dataloader).dataset)
    dataset_cfg.update(data_root=str(root),
                       data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'))
    with DefaultScope.overwrite_default_scope('mmseg'):
        return DATASETS.build(dataset_cfg)


def test_seg_missing_label_map_raises_file_not_found_naming_it(seg_root):
    missing = seg_root / 'annotations' / 'training' / 'synth_00001.png'
    missing.unlink()
    dataset = seg_dataset(seg_root)  # mmseg lists images only: construction works, the fetch fails clearly
    assert len(dataset) == 3
    with pytest.raises(FileNotFoundError, match=str(missing)):
        dataset[1]


def test_seg_grayscale_and_rgba_images_load_as_three_channels(seg_root):
    images = seg_root / 'images' / 'training'
    Image.open(images / 'synth_00000.jpg').convert('L').save(images / 'synth_00000.jpg')
    Image.open(images / 'synth_00001.jpg').convert('RGBA').save(images / 'synth_00001.jpg', format='PNG')
    for split in ('train', 'val'):
        dataset = seg_dataset(seg_root, split)
        for index in (0, 1):
            sample = dataset[index]
            assert sample['inputs'].shape[0] == 3
            assert sample['data_samples'].gt_sem_seg.data.ndim == 3
    gray = seg_dataset(seg_root, 'val')[0]['inputs']
    assert torch.equal(gray[0], gray[2])


def test_seg_label_map_of_another_size_is_refused(seg_root):
    labels = seg_root / 'annotations' / 'training' / 'synth_00002.png'
    label = Image.open(labels)
    label.resize((label.width + 10, label.height - 5), Image.NEAREST).save(labels)
    for split in ('train', 'val'):
        with pytest.raises(ValueError, match=r'synth_00002.png is \d+x\d+ .* but its image .*synth_00002.jpg'):
            seg_dataset(seg_root, split)[2]
    assert seg_dataset(seg_root)[1]['inputs'].shape[0] == 3  # the others still load


@pytest.mark.parametrize('damage', ['garbage', 'truncated'])
def test_seg_damaged_label_map_is_named(seg_root, damage):
    labels = seg_root / 'annotations' / 'training' / 'synth_00001.png'
    data = labels.read_bytes()
    labels.write_bytes(b'not a png' if damage == 'garbage' else data[:len(data) // 2])
    with pytest.raises(ValueError, match=r'label map .*synth_00001.png cannot be read'):
        seg_dataset(seg_root)[1]


def test_seg_corrupt_image_is_skipped_in_training_and_named_in_evaluation(seg_root, log_records):
    image = seg_root / 'images' / 'training' / 'synth_00000.jpg'
    image.write_bytes(b'not a jpeg')
    sample = seg_dataset(seg_root)[0]  # LoadImageSkipUnreadable: logged, and mmengine fetches another index
    assert sample['inputs'].shape[0] == 3 and 'synth_00000' not in sample['data_samples'].img_path
    assert any(f'skipped unreadable image {image}' in message for message in log_records)
    with pytest.raises(AssertionError, match=f'failed to load image: {image}'):  # mmcv's LoadImageFromFile
        seg_dataset(seg_root, 'val')[0]


def test_seg_label_map_check_can_skip_with_a_warning(tmp_path, log_records):
    from mae_transfer.datasets import CheckLabelMap
    Image.fromarray(np.zeros((5, 7), np.uint8)).save(tmp_path / 'a.png')
    results = dict(seg_map_path=str(tmp_path / 'a.png'), ori_shape=(5, 8), img_path='a.jpg')
    assert CheckLabelMap(on_mismatch='skip')(dict(results)) is None  # mmengine's dataset then fetches another
    assert any('skipping: label map' in message and 'is 7x5' in message for message in log_records)
    results['ori_shape'] = (5, 7)
    assert CheckLabelMap()(results) is results
    image_only = dict(ori_shape=(5, 8), img_path='a.jpg')  # inference pipelines have no label map
    assert CheckLabelMap()(image_only) is image_only
    with pytest.raises(ValueError, match='on_mismatch'):
        CheckLabelMap(on_mismatch='ignore')


def _seg_with_value_check(root: Path, split: str = 'train', on_mismatch: str = 'error'):
    """The tiny twin's dataset with CheckLabelMap given the class count (5) as a config would give it."""
    from mmseg.registry import DATASETS
    cfg = Config.fromfile(str(SEG_CONFIG))
    dataset_cfg = copy.deepcopy((cfg.train_dataloader if split == 'train' else cfg.val_dataloader).dataset)
    dataset_cfg.update(data_root=str(root),
                       data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'))
    for step in dataset_cfg.pipeline:
        if step['type'] == 'mae_transfer.CheckLabelMap':
            step.update(num_classes=5, on_mismatch=on_mismatch)
    with DefaultScope.overwrite_default_scope('mmseg'):
        return DATASETS.build(dataset_cfg)


def test_seg_label_values_outside_the_classes_and_ignore_index_are_named_or_skipped_once(seg_root, log_records):
    labels = seg_root / 'annotations' / 'training' / 'synth_00001.png'
    label = np.array(Image.open(labels))
    label[:3, :3], label[-1, -1] = 9, 255  # 9: no class (1..5 raw, reduce_zero_label); 255: the ignore index
    Image.fromarray(label).save(labels)
    for split in ('train', 'val'):
        with pytest.raises(ValueError, match=r'synth_00001.png holds the values \[9\], which are neither a class id '
                                             r'\(1..5 \(0: ignored, reduce_zero_label\)\) nor the ignore index 255'):
            _seg_with_value_check(seg_root, split)[1]
    dataset = _seg_with_value_check(seg_root, on_mismatch='skip')
    for _ in range(2):  # the skip is logged once, the other maps are read
        assert 'synth_00001' not in dataset[1]['data_samples'].img_path
    assert sum('skipping: label map' in message and 'synth_00001.png holds the values [9]' in message
               for message in log_records) == 1
    assert _seg_with_value_check(seg_root)[0]['inputs'].shape[0] == 3  # clean maps pass (0 and 255 included)
