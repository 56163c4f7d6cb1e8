"""The unlabeled image folder: recursive search, colour conversion, bad files skipped, empty folders refused."""
import numpy as np
import pytest
import torch
from PIL import Image

from mae_transfer.datasets import UnlabeledImageFolder, find_images, generate_images
from mae_transfer.utils.images import load_rgb


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


def _exif_rotated_jpeg(path) -> None:
    """A 20 x 10 (w x h) picture stored sideways with EXIF orientation 6: upright it is 10 wide, 20 tall."""
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    Image.new('RGB', (20, 10), (0, 0, 255)).save(path, exif=exif.tobytes())


def test_a_photo_folder_of_every_awkward_kind_loads_or_names_each_skip(tmp_path, log_records):
    """The folder of the fault report, in an order where the bad files come first: each readable file gives a
    crop, each unreadable one is named once in the log, and nothing stops the run."""
    Image.new('RGB', (64, 48), (200, 10, 10)).save(tmp_path / 'z_good.jpg')
    data = (tmp_path / 'z_good.jpg').read_bytes()
    unreadable = {
        'a_truncated.jpg': data[:len(data) // 3],
        'b_empty.jpg': b'',
        'c_text.png': b'this is a text file',
    }
    for name, content in unreadable.items():
        (tmp_path / name).write_bytes(content)
    (tmp_path / 'd_loop.jpg').symlink_to(tmp_path / 'e_loop.jpg')
    (tmp_path / 'e_loop.jpg').symlink_to(tmp_path / 'd_loop.jpg')
    Image.new('CMYK', (30, 30), (0, 255, 255, 0)).save(tmp_path / 'f_cmyk.jpg')
    Image.fromarray(np.full((30, 30), 40000, np.uint16)).save(tmp_path / 'g_gray16.png')
    Image.new('RGB', (1, 1), (0, 255, 0)).save(tmp_path / 'h_1x1.png')
    Image.new('RGB', (3, 900), (0, 255, 0)).save(tmp_path / 'i_3x900.png')
    frames = [Image.new('P', (20, 20), color) for color in (1, 2, 3)]
    frames[0].save(tmp_path / 'j_animated.gif', save_all=True, append_images=frames[1:])
    Image.new('LA', (20, 20), (128, 255)).save(tmp_path / 'k_gray_alpha.png')
    _exif_rotated_jpeg(tmp_path / 'l_exif.jpg')
    Image.new('RGB', (20, 20)).save(tmp_path / 'm_upper.JPG')

    dataset = UnlabeledImageFolder(tmp_path, crop_size=16)
    names = [path.name for path in dataset.paths]
    assert len(names) == 14 and 'm_upper.JPG' in names and 'd_loop.jpg' in names
    for index in range(len(dataset)):
        assert dataset[index]['inputs'].shape == (3, 16, 16)
    skipped = {dataset.paths[index].name for index in dataset.unreadable}
    assert skipped == {'a_truncated.jpg', 'b_empty.jpg', 'c_text.png', 'd_loop.jpg', 'e_loop.jpg'}
    for name in skipped:
        assert sum(f'skipped unreadable image {tmp_path / name}' in message for message in log_records) == 1
    assert load_rgb(tmp_path / 'l_exif.jpg').size == (10, 20)  # upright, as a photo viewer shows it
    assert np.asarray(load_rgb(tmp_path / 'g_gray16.png'))[0, 0, 0] == 40000 >> 8  # not clipped to white
