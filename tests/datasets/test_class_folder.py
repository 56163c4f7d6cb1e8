"""Class-folder data: the procedural generator, ClassFolderDataset (layout, class lists, timm transforms, corrupt
images) and the posterize fix for RandAugment."""
from pathlib import Path

import pytest
import torch
from PIL import Image

from mae_transfer.datasets import ClassFolderDataset, generate_class_folders
from mae_transfer.datasets.synthetic.classes import CLASS_NAMES

TRAIN_TF = dict(input_size=32, is_training=True, auto_augment='rand-m9-mstd0.5-inc1', interpolation='bicubic',
                re_prob=0.25, re_mode='pixel', re_count=1, scale=(0.35, 1.0))
EVAL_TF = dict(input_size=32, is_training=False, interpolation='bicubic', crop_pct=224 / 256)


@pytest.fixture(scope='module')
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp('cls')
    written = generate_class_folders(root, num_classes=4, train_per_class=3, val_per_class=2, image_size=(40, 56))
    return root, written


def test_generator_layout_and_determinism(folders, tmp_path):
    root, written = folders
    assert len(written['train']) == 12 and len(written['val']) == 8
    assert sorted(p.name for p in (root / 'train').iterdir()) == sorted(CLASS_NAMES[:4])
    again = generate_class_folders(tmp_path, num_classes=4, train_per_class=3, val_per_class=2, image_size=(40, 56))
    for first, second in zip(written['train'], again['train']):
        assert first.read_bytes() == second.read_bytes()
    other = generate_class_folders(tmp_path / 'seed1', num_classes=4, train_per_class=1, val_per_class=0,
                                   image_size=(40, 56), seed=1, splits=('train', ))
    assert other['train'][0].read_bytes() != written['train'][0].read_bytes()
    with pytest.raises(ValueError):
        generate_class_folders(tmp_path, num_classes=len(CLASS_NAMES) + 1)


def test_dataset_items_and_labels(folders):
    root, _ = folders
    train = ClassFolderDataset(root / 'train', transform=TRAIN_TF)
    assert train.classes == sorted(CLASS_NAMES[:4]) and train.metainfo['classes'] == tuple(train.classes)
    assert len(train) == 12 and sorted(set(train.labels)) == [0, 1, 2, 3]
    for index in range(len(train)):  # RandAugment + random erasing on every image
        item = train[index]
        assert item['inputs'].shape == (3, 32, 32) and item['inputs'].dtype == torch.float32
        assert item['data_samples'] == train.labels[index]
        assert train.samples[index][0].parent.name == train.classes[item['data_samples']]
    val = ClassFolderDataset(root / 'val', transform=EVAL_TF)
    assert val[0]['inputs'].shape == (3, 32, 32)
    assert val[0]['inputs'].abs().max() > 0.5  # normalised with the ImageNet mean / std, not in [0, 1]


def test_class_list_from_another_folder_or_names(folders, tmp_path):
    root, _ = folders
    # a validation folder lacking a class keeps the training indices when the class list comes from train
    partial = tmp_path / 'val'
    for name in sorted(CLASS_NAMES[:4])[1:]:
        (partial / name).mkdir(parents=True)
        Image.new('RGB', (40, 40)).save(partial / name / 'a.png')
    own = ClassFolderDataset(partial, transform=EVAL_TF)
    shared = ClassFolderDataset(partial, transform=EVAL_TF, classes=root / 'train')
    assert own.labels == [0, 1, 2] and shared.labels == [1, 2, 3]
    named = ClassFolderDataset(partial, transform=EVAL_TF, classes=sorted(CLASS_NAMES[:4])[1:2])
    assert len(named) == 1 and named.classes == [sorted(CLASS_NAMES[:4])[1]]
    with pytest.raises(FileNotFoundError):
        ClassFolderDataset(tmp_path / 'missing', transform=EVAL_TF)


@pytest.mark.parametrize('content', [b'not a jpeg at all', b'\xff\xd8 truncated jpeg'])
def test_corrupt_image_is_logged_once_and_replaced_by_the_next_readable_one(tmp_path, log_records, content):
    for name in ('a', 'b'):
        (tmp_path / name).mkdir()
        Image.new('RGB', (40, 40), (200, 10, 10)).save(tmp_path / name / 'good.png')
    (tmp_path / 'a' / 'broken.jpg').write_bytes(content)
    dataset = ClassFolderDataset(tmp_path, transform=EVAL_TF)
    broken = [i for i, (path, _) in enumerate(dataset.samples) if path.name == 'broken.jpg'][0]
    item = dataset[broken]
    assert item['inputs'].shape == (3, 32, 32) and torch.isfinite(item['inputs']).all()
    assert item['data_samples'] == dataset.samples[(broken + 1) % len(dataset)][1]  # the next readable image
    dataset[broken]
    assert broken in dataset.unreadable
    assert len([m for m in log_records if 'skipped unreadable image' in m and 'broken.jpg' in m]) == 1


def test_posterize_keeps_zero_bits_valid():
    from timm.data.auto_augment import AugmentOp

    from mae_transfer.datasets.class_folder import _fix_timm_posterize
    _fix_timm_posterize()
    op = AugmentOp('PosterizeIncreasing', prob=1.0, magnitude=10)  # level 10 -> keep 0 bits
    assert op(Image.new('RGB', (4, 4), (200, 100, 50))).getpixel((0, 0)) == (0, 0, 0)
    op = AugmentOp('PosterizeIncreasing', prob=1.0, magnitude=5)  # keep 2 bits: the top two of each channel
    assert op(Image.new('RGB', (4, 4), (200, 100, 50))).getpixel((0, 0)) == (192, 64, 0)


# ---- bad input -------------------------------------------------------------------------------------------------


def _class_folders(root: Path, names=('a', 'b', 'c')) -> None:
    for index, name in enumerate(names):
        (root / name).mkdir(parents=True)
        Image.new('RGB', (40, 40), (60 * index, 10, 200 - 60 * index)).save(root / name / 'good.png')


def test_empty_class_folder_is_logged_and_indices_follow_the_training_folder(tmp_path, log_records):
    _class_folders(tmp_path / 'train')
    for path in (tmp_path / 'train' / 'b').iterdir():
        path.unlink()
    train = ClassFolderDataset(tmp_path / 'train', transform=EVAL_TF)
    assert train.classes == ['a', 'c'] and train.labels == [0, 1]
    assert [m for m in log_records if 'without images' in m and "['b']" in m]
    _class_folders(tmp_path / 'val')  # the config's val set takes its classes from the training folder
    val = ClassFolderDataset(tmp_path / 'val', transform=EVAL_TF, classes=tmp_path / 'train')
    assert [(path.parent.name, label) for path, label in val.samples] == [('a', 0), ('c', 1)]
    for name in ('a', 'c'):
        (tmp_path / 'train' / name / 'good.png').unlink()
    with pytest.raises(FileNotFoundError, match='no class sub-folders with images'):
        ClassFolderDataset(tmp_path / 'train', transform=EVAL_TF)


def test_grayscale_and_rgba_images_become_rgb(tmp_path):
    _class_folders(tmp_path, names=('a', 'b'))
    Image.new('L', (40, 30), 128).save(tmp_path / 'a' / 'gray.png')
    Image.new('RGBA', (30, 40), (255, 0, 0, 0)).save(tmp_path / 'b' / 'rgba.png')
    dataset = ClassFolderDataset(tmp_path, transform=EVAL_TF)
    for path, label in dataset.samples:
        item = dataset[dataset.samples.index((path, label))]
        assert item['inputs'].shape == (3, 32, 32) and item['data_samples'] == label
        if path.name == 'gray.png':
            assert torch.allclose(item['inputs'][0] * 0.229 + 0.485, item['inputs'][2] * 0.225 + 0.406, atol=1e-5)
        if path.name == 'rgba.png':  # fully transparent red stays red (alpha dropped, not composited)
            assert float(item['inputs'][0].mean()) > float(item['inputs'][1].mean())
