"""Bad pose data through our CocoKeypointsDataset and the tiny twin's pipeline.

Each fault gets a clear error naming the file, a logged skip, or correct handling, through the dataset
classes and pipelines of the tiny task config.
"""
import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mae_transfer.datasets import CocoKeypointsDataset, generate_pose_dataset
from mae_transfer.utils.configs import CONFIG_ROOT

POSE_CONFIG = CONFIG_ROOT / 'pose' / 'heatmap_vit-tiny-p16_1xb32-300i_synthetic-128x96.py'


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


def _pose_coco(root: Path, split: str = 'train') -> dict:
    return json.loads((root / 'annotations' / f'person_keypoints_{split}.json').read_text())


def test_pose_keypoint_outside_its_image_is_marked_unlabelled_and_said(pose_root, log_records):
    data = _pose_coco(pose_root)
    ann = data['annotations'][0]
    labelled = [k for k in range(17) if ann['keypoints'][3 * k + 2] > 0]
    ann['keypoints'][3 * labelled[0]:3 * labelled[0] + 3] = [5000.0, 10.0, 2]  # far right of the image
    ann['keypoints'][3 * labelled[1]:3 * labelled[1] + 3] = [10.0, -3.0, 1]  # above it
    (pose_root / 'annotations' / 'outside.json').write_text(json.dumps(data))
    dataset = pose_dataset(pose_root, 'annotations/outside.json')
    item = next(dataset.get_data_info(i) for i in range(len(dataset)) if dataset.get_data_info(i)['id'] == ann['id'])
    assert item['keypoints_visible'][labelled[0]] == 0 and item['keypoints_visible'][labelled[1]] == 0
    assert item['keypoints_visible'].sum() == len(labelled) - 2
    lines = [message for message in log_records if '(training set, checked in' in message]
    assert len(lines) == 1 and lines[0].endswith(
        f'2 labelled keypoints outside their image (ann {ann["id"]} keypoint {labelled[0]}: (5000.0, 10.0) in '
        f'{data["images"][0]["width"]}x{data["images"][0]["height"]}, ann {ann["id"]} keypoint {labelled[1]}: '
        f'(10.0, -3.0) in {data["images"][0]["width"]}x{data["images"][0]["height"]}) marked unlabelled')


def test_pose_missing_test_image_stops_at_construction(pose_root):
    missing = _pose_coco(pose_root, 'val')['images'][1]['file_name']
    (pose_root / 'val' / missing).unlink()
    with pytest.raises(FileNotFoundError, match=f'1 of the 2 image files of this evaluation set .*\\({missing}\\)'):
        pose_dataset(pose_root, 'annotations/person_keypoints_val.json', split='val')
