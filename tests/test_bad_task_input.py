"""Bad downstream task data (issue 9): each fault gets a clear error naming the file, a logged skip, or correct
handling, through the dataset classes and pipelines of the tiny task configs. One test per fault."""
import copy
import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope
from PIL import Image

from mae_transfer.datasets import CocoKeypointsDataset, generate_pose_dataset
from mae_transfer.datasets.class_folder import ClassFolderDataset
from mae_transfer.datasets.synthetic.ade import generate_ade_dataset
from mae_transfer.datasets.synthetic.coco import generate_coco_instances
from mae_transfer.utils.configs import CONFIG_ROOT

DET_CONFIG = CONFIG_ROOT / 'det' / 'mask-rcnn_vit-tiny-p16_1xb4-lsj-600i_synthetic-128x128.py'
SEG_CONFIG = CONFIG_ROOT / 'seg' / 'upernet_vit-tiny-p16_1xb8-200i_synthetic-128x128.py'
POSE_CONFIG = CONFIG_ROOT / 'pose' / 'heatmap_vit-tiny-p16_1xb32-300i_synthetic-128x96.py'
CLS_EVAL = dict(input_size=32, is_training=False, interpolation='bilinear', crop_pct=1.0)


class Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def log_records():
    logger = MMLogger.get_current_instance()  # where print_log(logger='current') goes
    records = Records()
    logger.addHandler(records)
    yield records.messages
    logger.removeHandler(records)


# ---- detection: mmdet's CocoDataset with the tiny twin's pipelines ---------------------------------------------


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


def test_det_missing_image_raises_file_not_found_naming_it(det_root):
    missing = det_root / 'train' / _coco(det_root)['images'][0]['file_name']
    missing.unlink()
    dataset = det_dataset(det_root, split='val')  # the file list comes from the json: construction works
    with pytest.raises(FileNotFoundError, match=str(missing)):
        dataset[0]


# ---- segmentation: mmseg's BaseSegDataset with the tiny twin's pipelines ---------------------------------------


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


def test_seg_corrupt_image_is_named(seg_root):
    image = seg_root / 'images' / 'training' / 'synth_00000.jpg'
    image.write_bytes(b'not a jpeg')
    with pytest.raises(AssertionError, match=f'failed to load image: {image}'):  # mmcv's LoadImageFromFile
        seg_dataset(seg_root)[0]


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


# ---- pose: our CocoKeypointsDataset with the tiny twin's pipeline ----------------------------------------------


@pytest.fixture
def pose_root(tmp_path):
    generate_pose_dataset(tmp_path, num_train=3, num_val=2, seed=0, size_range=(96, 128), max_persons=2)
    return tmp_path


def pose_dataset(root: Path, ann_file: str = 'annotations/person_keypoints_train.json', split: str = 'train',
                 **options):
    cfg = Config.fromfile(str(POSE_CONFIG))
    dataset_cfg = copy.deepcopy((cfg.train_dataloader if split == 'train' else cfg.val_dataloader).dataset)
    dataset_cfg.pop('type', None)
    dataset_cfg.update(data_root=str(root) + '/', ann_file=ann_file, **options)
    with DefaultScope.overwrite_default_scope('mae_transfer'):
        return CocoKeypointsDataset(**dataset_cfg)


def test_pose_person_with_all_keypoints_invisible_is_skipped_and_gives_no_nan(pose_root):
    from mae_transfer.models.heads import KeypointMSELoss
    data = json.loads((pose_root / 'annotations' / 'person_keypoints_train.json').read_text())
    hidden = data['annotations'][0]
    hidden['keypoints'] = [0 if i % 3 == 2 else v for i, v in enumerate(hidden['keypoints'])]
    hidden['num_keypoints'] = 0
    (pose_root / 'annotations' / 'hidden.json').write_text(json.dumps(data))
    dataset = pose_dataset(pose_root, 'annotations/hidden.json')
    ids = [dataset.get_data_info(i)['id'] for i in range(len(dataset))]
    assert hidden['id'] not in ids and len(ids) == len(data['annotations']) - 1
    # the same person pushed through the training pipeline anyway: zero weights, finite targets and loss
    info = dataset.get_data_info(0)
    info['keypoints_visible'] = np.zeros_like(info['keypoints_visible'])
    np.random.seed(0)
    sample = dataset.pipeline(info)['data_samples']
    assert torch.isfinite(sample.heatmaps).all() and float(sample.keypoint_weights.abs().sum()) == 0
    loss = KeypointMSELoss()(torch.rand(1, *sample.heatmaps.shape), sample.heatmaps[None],
                             sample.keypoint_weights[None])
    assert torch.isfinite(loss) and float(loss) == 0


def test_pose_annotation_file_all_persons_unusable_is_a_clear_error(pose_root):
    data = json.loads((pose_root / 'annotations' / 'person_keypoints_train.json').read_text())
    for ann in data['annotations']:
        ann['keypoints'] = [0] * len(ann['keypoints'])
    path = pose_root / 'annotations' / 'none.json'
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=f'{path}.*no usable person'):  # was: numpy's 'need at least one array'
        pose_dataset(pose_root, 'annotations/none.json')


@pytest.mark.parametrize('content,problem', [('{"images": [', 'is not valid JSON'),
                                             ('{"info": {}}', r"lacks the key\(s\) \['images', 'annotations'\]"),
                                             ('[1, 2]', 'holds a JSON list')])
def test_pose_annotation_file_not_coco_json_names_the_file(pose_root, content, problem):
    path = pose_root / 'annotations' / 'broken.json'
    path.write_text(content)
    with pytest.raises(ValueError, match=f'{path}.*{problem}'):
        pose_dataset(pose_root, 'annotations/broken.json')


def test_pose_detections_outside_the_image_are_clipped_or_dropped(pose_root):
    val = json.loads((pose_root / 'annotations' / 'person_keypoints_val.json').read_text())
    image = val['images'][0]
    detections = [dict(image_id=image['id'], category_id=1, score=0.9, bbox=[-50, -50, 30, 30]),  # fully outside
                  dict(image_id=image['id'], category_id=1, score=0.9, bbox=[1000, 1000, 30, 30]),  # fully outside
                  dict(image_id=image['id'], category_id=1, score=0.8, bbox=[-20, 10, 1000, 1000])]  # partly
    bbox_file = pose_root / 'detections.json'
    bbox_file.write_text(json.dumps(detections))
    dataset = pose_dataset(pose_root, 'annotations/person_keypoints_val.json', split='val',
                           bbox_file=str(bbox_file))
    assert len(dataset) == 1
    np.testing.assert_allclose(dataset.get_data_info(0)['bbox'], [0, 10, image['width'] - 1, image['height'] - 1])
    assert tuple(dataset[0]['inputs'].shape) == (3, 128, 96)
    # only boxes outside: a clear error instead of mmengine's 'need at least one array to concatenate'
    bbox_file.write_text(json.dumps(detections[:2]))
    with pytest.raises(ValueError, match=f'{bbox_file} holds no person detection'):
        pose_dataset(pose_root, 'annotations/person_keypoints_val.json', split='val', bbox_file=str(bbox_file))


@pytest.mark.parametrize('content,problem', [('nope', '{path} is not valid JSON'),
                                             ('{"a": 1}', '{path} holds a JSON dict'),
                                             ('[{"image_id": 1, "score": 0.5}]',
                                              "detection 0 of {path} lacks ['bbox']")])
def test_pose_detection_file_not_coco_results_names_the_file(pose_root, content, problem):
    bbox_file = pose_root / 'detections.json'
    bbox_file.write_text(content)
    with pytest.raises(ValueError, match=re.escape(problem.format(path=bbox_file))):
        pose_dataset(pose_root, 'annotations/person_keypoints_val.json', split='val', bbox_file=str(bbox_file))


# ---- classification: ClassFolderDataset ----------------------------------------------------------------------


def _class_folders(root: Path, names=('a', 'b', 'c')) -> None:
    for index, name in enumerate(names):
        (root / name).mkdir(parents=True)
        Image.new('RGB', (40, 40), (60 * index, 10, 200 - 60 * index)).save(root / name / 'good.png')


def test_cls_corrupt_image_is_logged_and_replaced(tmp_path, log_records):
    _class_folders(tmp_path)
    (tmp_path / 'b' / 'broken.jpg').write_bytes(b'\xff\xd8 truncated jpeg')
    dataset = ClassFolderDataset(tmp_path, transform=CLS_EVAL)
    broken = [i for i, (path, _) in enumerate(dataset.samples) if path.name == 'broken.jpg'][0]
    item = dataset[broken]
    assert item['inputs'].shape == (3, 32, 32) and torch.isfinite(item['inputs']).all()
    assert item['data_samples'] == dataset.samples[(broken + 1) % len(dataset)][1]
    assert [m for m in log_records if 'skipping unreadable image' in m and 'broken.jpg' in m]


def test_cls_empty_class_folder_is_logged_and_indices_follow_the_training_folder(tmp_path, log_records):
    _class_folders(tmp_path / 'train')
    for path in (tmp_path / 'train' / 'b').iterdir():
        path.unlink()
    train = ClassFolderDataset(tmp_path / 'train', transform=CLS_EVAL)
    assert train.classes == ['a', 'c'] and train.labels == [0, 1]
    assert [m for m in log_records if 'without images' in m and "['b']" in m]
    _class_folders(tmp_path / 'val')  # the config's val set takes its classes from the training folder
    val = ClassFolderDataset(tmp_path / 'val', transform=CLS_EVAL, classes=tmp_path / 'train')
    assert [(path.parent.name, label) for path, label in val.samples] == [('a', 0), ('c', 1)]
    for name in ('a', 'c'):
        (tmp_path / 'train' / name / 'good.png').unlink()
    with pytest.raises(FileNotFoundError, match='no class sub-folders with images'):
        ClassFolderDataset(tmp_path / 'train', transform=CLS_EVAL)


def test_cls_grayscale_and_rgba_images_become_rgb(tmp_path):
    _class_folders(tmp_path, names=('a', 'b'))
    Image.new('L', (40, 30), 128).save(tmp_path / 'a' / 'gray.png')
    Image.new('RGBA', (30, 40), (255, 0, 0, 0)).save(tmp_path / 'b' / 'rgba.png')
    dataset = ClassFolderDataset(tmp_path, transform=CLS_EVAL)
    for path, label in dataset.samples:
        item = dataset[dataset.samples.index((path, label))]
        assert item['inputs'].shape == (3, 32, 32) and item['data_samples'] == label
        if path.name == 'gray.png':
            assert torch.allclose(item['inputs'][0] * 0.229 + 0.485, item['inputs'][2] * 0.225 + 0.406, atol=1e-5)
        if path.name == 'rgba.png':  # fully transparent red stays red (alpha dropped, not composited)
            assert float(item['inputs'][0].mean()) > float(item['inputs'][1].mean())
