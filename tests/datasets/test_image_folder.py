"""The unlabeled image folder: recursive search, colour conversion, bad files skipped, empty folders refused."""
import numpy as np
import pytest
import torch
from PIL import Image

from mae_transfer.datasets import UnlabeledImageFolder, find_images, generate_images


def test_generated_images_are_deterministic_and_varied(tmp_path):
    first = generate_images(tmp_path / 'a', num_images=3, seed=7)
    second = generate_images(tmp_path / 'b', num_images=3, seed=7)
    other = generate_images(tmp_path / 'c', num_images=3, seed=8)
    pixels = lambda path: np.asarray(Image.open(path))  # noqa: E731
    assert all(np.array_equal(pixels(a), pixels(b)) for a, b in zip(first, second))
    assert not np.array_equal(pixels(first[0]), pixels(other[0]))
    assert pixels(first[0]).std() > 10  # texture, not a flat image


def test_folder_is_searched_recursively_with_any_case_extension(tmp_path):
    (tmp_path / 'train' / 'n01440764').mkdir(parents=True)
    Image.new('RGB', (40, 30)).save(tmp_path / 'train' / 'n01440764' / 'a.JPEG')
    Image.new('RGB', (40, 30)).save(tmp_path / 'train' / 'b.png')
    (tmp_path / 'train' / 'notes.txt').write_text('not an image')
    assert [p.name for p in find_images(tmp_path)] == ['b.png', 'a.JPEG']


def test_grayscale_rgba_and_palette_images_become_rgb_crops(tmp_path):
    Image.new('L', (50, 40), 128).save(tmp_path / 'gray.png')
    Image.new('RGBA', (50, 40), (10, 20, 30, 0)).save(tmp_path / 'rgba.png')
    Image.new('P', (50, 40)).save(tmp_path / 'palette.gif')
    dataset = UnlabeledImageFolder(tmp_path, crop_size=(32, 48))
    for index in range(len(dataset)):
        item = dataset[index]['inputs']
        assert item.shape == (3, 32, 48) and item.dtype == torch.uint8


def test_unreadable_image_is_logged_once_and_skipped(tmp_path, log_records):
    Image.new('RGB', (40, 40), (255, 0, 0)).save(tmp_path / 'a_good.png')
    (tmp_path / 'b_corrupt.jpg').write_bytes(b'\xff\xd8\xff\xe0 this is not a jpeg')
    dataset = UnlabeledImageFolder(tmp_path, crop_size=16)
    for _ in range(3):
        item = dataset[1]['inputs']  # the corrupt file: replaced by the next readable one
        assert item[0].float().mean() > 200  # red: the good image was returned
    assert dataset.unreadable == {1}
    warnings = [m for m in log_records if 'b_corrupt.jpg' in m]
    assert len(warnings) == 1 and warnings[0].startswith(f'skipped unreadable image {tmp_path / "b_corrupt.jpg"}: ')


def test_truncated_image_is_skipped(tmp_path):
    Image.new('RGB', (64, 64), (0, 255, 0)).save(tmp_path / 'a.png')
    data = (tmp_path / 'a.png').read_bytes()
    (tmp_path / 'b_truncated.png').write_bytes(data[:len(data) // 2])
    dataset = UnlabeledImageFolder(tmp_path, crop_size=16)
    assert dataset[1]['inputs'].shape == (3, 16, 16)
    assert 1 in dataset.unreadable


def test_empty_or_missing_folder_is_a_clear_error(tmp_path):
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'readme.txt').write_text('no images here')
    with pytest.raises(FileNotFoundError, match='no images'):
        UnlabeledImageFolder(tmp_path / 'empty')
    with pytest.raises(FileNotFoundError, match='does not exist'):
        UnlabeledImageFolder(tmp_path / 'missing')


def test_all_unreadable_is_a_clear_error(tmp_path):
    (tmp_path / 'x.jpg').write_bytes(b'garbage')
    dataset = UnlabeledImageFolder(tmp_path, crop_size=16)
    with pytest.raises(RuntimeError, match='could be read'):
        dataset[0]
