"""The one image reader (mae_transfer.utils.images) and its policy, fault by fault: a long run (a hook, a training
dataset) logs "skipped unreadable image PATH: REASON" and keeps every readable file; a file asked for by name
stops with one line naming it. The reconstruction hook's case is in
tests/engine/test_reconstruction_hook_unreadable.py, a folder given to `mae-transfer infer` in
tests/apis/test_annotate.py."""
import os

import cv2
import numpy as np
import pytest
from PIL import Image

from mae_transfer.datasets import generate_class_folders, generate_pose_dataset
from mae_transfer.engine.knn_monitor_hook import KNNMonitorHook
from mae_transfer.utils.images import UnreadableImageError, read_image


def _damaged_files(folder):
    """name -> the start of the reason, for each way a file can fail to be an image."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), np.uint8)).save(folder / 'whole.png')
    data = (folder / 'whole.png').read_bytes()
    (folder / 'empty.jpg').write_bytes(b'')
    (folder / 'cut.png').write_bytes(data[:len(data) // 2])
    (folder / 'text.jpg').write_text('not an image')
    os.symlink(folder / 'loop.jpg', folder / 'loop.jpg')
    return {'empty.jpg': 'the file is empty', 'cut.png': 'image file is truncated',
            'text.jpg': 'not an image Pillow can decode', 'loop.jpg': 'Too many levels of symbolic links',
            'missing.jpg': 'No such file or directory'}


def test_every_decoding_failure_is_one_error_of_one_line_naming_the_file(tmp_path):
    for name, reason in _damaged_files(tmp_path).items():
        with pytest.raises(UnreadableImageError) as error:
            read_image(tmp_path / name)
        assert isinstance(error.value, ValueError) and '\n' not in str(error.value)
        assert str(error.value).startswith(f'cannot read image {tmp_path / name}: {reason}')


def test_modes_match_opencv(tmp_path):
    gray16 = (np.arange(48).reshape(6, 8) * 1300).astype(np.uint16)  # up to 61100: clipping would show
    cv2.imwrite(str(tmp_path / 'gray16.png'), gray16)
    rgb = np.random.default_rng(0).integers(0, 255, (6, 8, 3), np.uint8)
    Image.fromarray(rgb).convert('LA').save(tmp_path / 'gray_alpha.png')
    frames = [Image.fromarray(rgb).convert('P'), Image.fromarray(255 - rgb).convert('P')]
    frames[0].save(tmp_path / 'animated.gif', save_all=True, append_images=frames[1:])
    for name in ('gray16.png', 'gray_alpha.png', 'animated.gif'):  # OpenCV reads a GIF's first frame too
        assert np.array_equal(read_image(tmp_path / name, 'bgr'), cv2.imread(str(tmp_path / name))), name


def test_knn_monitor_skips_an_unreadable_file_and_keeps_the_others(tmp_path, log_records):
    generate_class_folders(tmp_path, num_classes=2, train_per_class=2, val_per_class=1, image_size=(24, 24), seed=0)
    broken = sorted((tmp_path / 'train').iterdir())[0] / 'a_broken.jpg'  # in the first class folder
    broken.write_bytes(b'')
    hook = KNNMonitorHook(data_root=tmp_path, batch_size=2)
    images, labels, classes = hook._read_split('train', (16, 16), None)
    assert images.shape == (4, 3, 16, 16) and sorted(labels.tolist()) == [0, 0, 1, 1]  # all 4 readable kept
    assert f'skipped unreadable image {broken}: the file is empty (0 bytes)' in log_records
    assert any('skipped 1 unreadable of 5 images' in message for message in log_records)


def test_pose_training_set_skips_a_corrupt_image_and_a_test_pipeline_names_it(tmp_path, log_records):
    from mae_transfer.datasets import CocoKeypointsDataset
    files = generate_pose_dataset(tmp_path, num_train=3, num_val=1, size_range=(32, 40), max_persons=1)
    dataset = CocoKeypointsDataset(ann_file=str(files['train']), data_root=str(tmp_path),
                                   data_prefix=dict(img='train/'),
                                   pipeline=[dict(type='mae_transfer.LoadImageSkipUnreadable')])
    paths = [dataset.get_data_info(index)['img_path'] for index in range(len(dataset))]
    with open(paths[0], 'r+b') as handle:  # cut the first image in half
        handle.truncate(os.path.getsize(paths[0]) // 2)
    item = dataset[0]  # mmengine draws another index for the None of the skipped file
    assert item['img_path'] != paths[0] and item['img'].shape[2] == 3 and item['img'].dtype == np.uint8
    assert np.array_equal(item['img'], cv2.imread(item['img_path']))  # the same pixels as OpenCV
    assert any(message.startswith(f'skipped unreadable image {paths[0]}: ') for message in log_records)
    evaluation = CocoKeypointsDataset(ann_file=str(files['train']), data_root=str(tmp_path),
                                      data_prefix=dict(img='train/'), test_mode=True,
                                      pipeline=[dict(type='mae_transfer.LoadImageSkipUnreadable',
                                                     skip_unreadable=False)])
    with pytest.raises(UnreadableImageError, match=f'^cannot read image {paths[0]}: '):
        evaluation[0]


def test_pose_api_on_exactly_one_unreadable_file_stops_naming_it(tmp_path):
    from mae_transfer.apis.pose import inference
    (tmp_path / 'person.jpg').write_bytes(b'\xff\xd8\xff\xe0 cut')
    with pytest.raises(UnreadableImageError, match=f'^cannot read image {tmp_path / "person.jpg"}: '):
        inference(None, [tmp_path / 'person.jpg'])  # the file is read before the model is used


def test_visualize_and_reconstruction_on_exactly_one_unreadable_file(tmp_path):
    from mae_transfer.datasets.image_folder import load_images  # what `mae-transfer visualize` and the API read
    (tmp_path / 'photo.png').write_text('not a png')
    with pytest.raises(UnreadableImageError, match=f'^cannot read image {tmp_path / "photo.png"}: not an image'):
        load_images([tmp_path / 'photo.png'], 32)
