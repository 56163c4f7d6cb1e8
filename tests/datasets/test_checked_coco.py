"""Bad detection data through mmdet's CocoDataset / our CheckedCocoDataset and the tiny twin's pipelines.

Each fault gets a clear error naming the file, a logged skip, or correct handling, through the dataset
classes and pipelines of the tiny task config.
"""
import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from PIL import Image

from mae_transfer.datasets.synthetic.coco import generate_coco_instances
from mae_transfer.utils.configs import CONFIG_ROOT

DET_CONFIG = CONFIG_ROOT / 'det' / 'mask-rcnn_vit-tiny-p16_1xb4-lsj-600i_synthetic-128x128.py'


@pytest.fixture
def det_root(tmp_path):
    generate_coco_instances(tmp_path, num_train=4, num_val=0, seed=0, size_range=(64, 80), empty_fraction=0.0)
    return tmp_path


def det_dataset(root: Path, ann_file: str = 'annotations/instances_train.json', split: str = 'train'):
    from mmdet.registry import DATASETS
    cfg = Config.fromfile(str(DET_CONFIG))
    dataset_cfg = copy.deepcopy((cfg.train_dataloader if split == 'train' else cfg.val_dataloader).dataset)
    dataset_cfg.update(data_root=str(root) + '/', ann_file=ann_file, data_prefix=dict(img='train/'))
    with DefaultScope.overwrite_default_scope('mmdet'):
        return DATASETS.build(dataset_cfg)


def _coco(root: Path) -> dict:
    return json.loads((root / 'annotations' / 'instances_train.json').read_text())


def _write(root: Path, name: str, data: dict) -> str:
    (root / 'annotations' / name).write_text(json.dumps(data))
    return f'annotations/{name}'


def _shift(ann: dict, dx: float, dy: float) -> None:
    ann['bbox'][0] += dx
    ann['bbox'][1] += dy
    ann['segmentation'] = [[v + (dx if i % 2 == 0 else dy) for i, v in enumerate(polygon)]
                           for polygon in ann['segmentation']]


def test_det_annotation_file_not_json_names_the_file(det_root):
    (det_root / 'annotations' / 'broken.json').write_text('this is { not json')
    with pytest.raises(ValueError, match='broken.json.*not valid JSON'):
        det_dataset(det_root, 'annotations/broken.json')
    _write(det_root, 'a_list.json', [])
    with pytest.raises(ValueError, match='a_list.json holds a JSON list'):
        det_dataset(det_root, 'annotations/a_list.json')


def test_det_config_class_missing_from_the_annotation_categories_names_it(det_root):
    data = _coco(det_root)
    data['categories'][1]['name'] = 'box'  # the config still says 'rectangle': mmdet would drop those boxes
    with pytest.raises(ValueError, match=r"outside.json has no category named \['rectangle'\].*'box'"):
        det_dataset(det_root, _write(det_root, 'outside.json', data))


def test_det_boxes_partly_outside_are_clipped_and_fully_outside_are_dropped(det_root):
    data = _coco(det_root)
    image = data['images'][0]
    anns = [ann for ann in data['annotations'] if ann['image_id'] == image['id']]
    assert len(anns) >= 2
    _shift(anns[0], image['width'] - anns[0]['bbox'][0] - anns[0]['bbox'][2] / 2, 0)  # right half outside
    _shift(anns[1], 1000, 1000)  # entirely outside
    dataset = det_dataset(det_root, _write(det_root, 'outside.json', data))
    index = [dataset.get_data_info(i)['img_id'] for i in range(len(dataset))].index(image['id'])
    instances = dataset.get_data_info(index)['instances']
    assert len(instances) == len(anns) - 1  # the box without any overlap is dropped at load
    assert instances[0]['bbox'][2] > image['width']  # kept as annotated (COCO evaluation needs the original)
    np.random.seed(0)
    for _ in range(4):  # after RandomResize / RandomCrop the training boxes lie inside the 128 x 128 input
        sample = dataset[index]
        boxes = sample['data_samples'].gt_instances.bboxes.tensor
        assert torch.isfinite(boxes).all()
        assert (boxes >= 0).all() and (boxes[:, 2] <= 128).all() and (boxes[:, 3] <= 128).all()
        assert ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).all()


def test_det_image_without_annotations_is_filtered_for_training_and_kept_for_validation(det_root):
    data = _coco(det_root)
    empty_id = data['images'][1]['id']
    data['annotations'] = [ann for ann in data['annotations'] if ann['image_id'] != empty_id]
    ann_file = _write(det_root, 'empty.json', data)
    train = det_dataset(det_root, ann_file)
    assert len(train) == 3 and empty_id not in [train.get_data_info(i)['img_id'] for i in range(len(train))]
    val = det_dataset(det_root, ann_file, split='val')
    ids = [val.get_data_info(i)['img_id'] for i in range(len(val))]
    assert len(val) == 4
    sample = val[ids.index(empty_id)]
    assert sample['data_samples'].gt_instances.bboxes.tensor.shape == (0, 4)


def test_det_grayscale_jpeg_and_rgba_png_load_as_three_channels(det_root):
    data = _coco(det_root)
    gray, rgba = data['images'][0], data['images'][1]
    gray_path = det_root / 'train' / gray['file_name']
    Image.open(gray_path).convert('L').save(gray_path)
    rgba_path = (det_root / 'train' / rgba['file_name']).with_suffix('.png')
    Image.open(det_root / 'train' / rgba['file_name']).convert('RGBA').save(rgba_path)
    rgba['file_name'] = rgba_path.name
    dataset = det_dataset(det_root, _write(det_root, 'modes.json', data), split='val')
    ids = [dataset.get_data_info(i)['img_id'] for i in range(len(dataset))]
    gray_input = dataset[ids.index(gray['id'])]['inputs']
    rgba_input = dataset[ids.index(rgba['id'])]['inputs']
    assert gray_input.shape[0] == 3 and rgba_input.shape[0] == 3
    assert torch.equal(gray_input[0], gray_input[1]) and torch.equal(gray_input[1], gray_input[2])
    assert not torch.equal(rgba_input[0], rgba_input[2])  # colour kept, alpha dropped


def test_det_corrupt_image_is_named(det_root):
    image = det_root / 'train' / _coco(det_root)['images'][0]['file_name']
    image.write_bytes(b'not a jpeg')
    with pytest.raises(AssertionError, match=f'failed to load image: {image}'):  # mmcv's LoadImageFromFile
        det_dataset(det_root, split='val')[0]


def test_det_missing_image_stops_an_evaluation_set_at_construction_and_is_dropped_from_training(det_root,
                                                                                                 log_records):
    from mae_transfer.utils.user_errors import user_error_message
    missing = _coco(det_root)['images'][0]['file_name']
    (det_root / 'train' / missing).unlink()
    with pytest.raises(FileNotFoundError, match=f'1 of the 4 image files .* missing under .*train/ \\({missing}\\)') \
            as error:  # at start-up, not from a DataLoader worker at the end of training
        det_dataset(det_root, split='val')
    message = user_error_message(error.value)  # what run_command prints after "mae-transfer train: error: "
    assert message == str(error.value) and '\n' not in message
    train = det_dataset(det_root)
    assert len(train) == 3 and all(missing not in train.get_data_info(i)['img_path'] for i in range(3))
    assert _summary(log_records).endswith(f'1 image files missing ({missing}) dropped with their annotations')


def _summary(log_records) -> str:
    """The one summary line of the annotation check."""
    lines = [message for message in log_records if '(training set, checked in' in message
             or '(evaluation set, checked in' in message]
    assert len(lines) == 1, log_records
    return lines[0]


def _instances(dataset) -> int:
    return sum(len(dataset.get_data_info(i)['instances']) for i in range(len(dataset)))


def test_det_box_with_non_positive_size_is_dropped_and_said(det_root, log_records):
    data = _coco(det_root)
    count = len(data['annotations'])
    data['annotations'][0]['bbox'][2] = -5.0  # negative width
    data['annotations'][1]['bbox'][3] = 0  # zero height
    dataset = det_dataset(det_root, _write(det_root, 'sizes.json', data))
    assert _instances(dataset) == count - 2
    line = _summary(log_records)
    assert '2 boxes with a non-positive width or height (ann 1: bbox [' in line and line.endswith(') dropped')


def test_det_category_id_not_in_categories_is_dropped_and_said(det_root, log_records):
    data = _coco(det_root)
    count = len(data['annotations'])
    data['annotations'][0]['category_id'] = 99
    dataset = det_dataset(det_root, _write(det_root, 'category.json', data))
    assert _instances(dataset) == count - 1
    assert '1 annotations with a category_id not in categories (ann 1: 99) dropped' in _summary(log_records)


def test_det_annotation_of_no_image_entry_is_dropped_and_said(det_root, log_records):
    data = _coco(det_root)
    data['annotations'][0]['image_id'] = 12345
    det_dataset(det_root, _write(det_root, 'orphan.json', data))
    assert '1 annotations whose image_id is in no image entry (ann 1: 12345) dropped' in _summary(log_records)


def test_det_duplicate_annotation_ids_are_renumbered_for_training_and_stop_evaluation(det_root, log_records):
    data = _coco(det_root)
    count = len(data['annotations'])
    data['annotations'][1]['id'] = data['annotations'][0]['id']  # mmdet would assert "not unique" (a traceback)
    ann_file = _write(det_root, 'dup_anns.json', data)
    assert _instances(det_dataset(det_root, ann_file)) == count  # both kept
    assert f'1 annotations sharing an id (ann 1) renumbered from {count + 1} (kept)' in _summary(log_records)
    with pytest.raises(ValueError, match='1 annotation id.* used more than once .*evaluation matches by id'):
        det_dataset(det_root, ann_file, split='val')


def test_det_duplicate_image_ids_are_dropped_for_training_and_stop_evaluation(det_root, log_records):
    data = _coco(det_root)
    data['images'][1]['id'] = data['images'][0]['id']  # pycocotools would keep one entry with both images' boxes
    ann_file = _write(det_root, 'dup_images.json', data)
    assert len(det_dataset(det_root, ann_file)) == 2
    assert '2 image entries sharing an id (id 1: 000000.jpg, id 1: 000001.jpg) dropped with their annotations' \
        in _summary(log_records)
    with pytest.raises(ValueError, match='1 image id.* more than one image entry'):
        det_dataset(det_root, ann_file, split='val')
    data['categories'][1]['id'] = data['categories'][0]['id']
    with pytest.raises(ValueError, match=r'1 category id\(s\) name more than one category \(\[1\]\)'):
        det_dataset(det_root, _write(det_root, 'dup_categories.json', data))


def test_det_clean_file_logs_one_info_line_with_the_time(det_root, log_records):
    det_dataset(det_root, split='val')
    lines = [message for message in log_records if 'no problem found' in message]
    assert len(lines) == 1 and '4 images and' in lines[0]
