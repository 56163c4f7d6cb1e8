"""COCO keypoint dataset and metric on the real val2017 sample (14 persons, 12 with keypoints) and OKS NMS."""
import json
from pathlib import Path

import numpy as np
import pytest

from mae_transfer.datasets.coco_keypoints import CocoKeypointsDataset
from mae_transfer.evaluation.coco_keypoint_metric import CocoKeypointMetric, oks_iou, oks_nms

from helpers.paths import TEST_DATA

DATA = TEST_DATA / 'coco_sample_pose'
ANN = str(DATA / 'person_keypoints_val2017_sample.json')
DETS = str(DATA / 'person_detection_results_AP_H_56_sample.json')


def ground_truth_persons():
    data = json.loads(Path(ANN).read_text())
    return [ann for ann in data['annotations'] if ann['num_keypoints'] > 0 and not ann['iscrowd']]


def prediction(ann, keypoints=None, scores=None, bbox_score=1.0):
    kp = np.asarray(ann['keypoints'], np.float64).reshape(17, 3)
    return dict(id=ann['id'], img_id=ann['image_id'], category_id=1, bbox_score=bbox_score,
                pred_keypoints=kp[:, :2] if keypoints is None else keypoints,
                keypoint_scores=np.ones(17) if scores is None else scores,
                input_scale=np.array([ann['bbox'][2], ann['bbox'][3]]) * 1.25)


def evaluate(predictions, **kwargs):
    metric = CocoKeypointMetric(ann_file=ANN, **kwargs)
    metric.process({}, predictions)
    return metric.compute_metrics(metric.results)


def test_dataset_keeps_labelled_persons():
    dataset = CocoKeypointsDataset(ann_file=ANN, data_root=str(DATA), data_prefix=dict(img='val2017/'),
                                   test_mode=True)
    persons = ground_truth_persons()
    assert len(dataset) == len(persons) == 12  # 14 persons, 2 without labelled keypoints
    item = dataset.get_data_info(0)
    assert item['img_path'].endswith('val2017/000000000785.jpg')
    assert item['keypoints'].shape == (17, 2) and item['keypoints_visible'].sum() == 17
    x1, y1, x2, y2 = item['bbox']
    assert (x1, y1) == pytest.approx((280.79, 44.73), abs=0.01) and x2 > x1 and y2 > y1
    assert item['flip_indices'][1] == 2


def test_dataset_reads_detector_boxes_with_threshold():
    detections = json.loads(Path(DETS).read_text())
    all_boxes = CocoKeypointsDataset(ann_file=ANN, bbox_file=DETS, bbox_score_thr=0.0, test_mode=True)
    confident = CocoKeypointsDataset(ann_file=ANN, bbox_file=DETS, bbox_score_thr=0.5, test_mode=True)
    assert len(all_boxes) == len(detections)
    assert len(confident) == sum(det['score'] >= 0.5 for det in detections) < len(all_boxes)
    assert all(confident.get_data_info(i)['bbox_score'] >= 0.5 for i in range(len(confident)))


def test_ground_truth_predictions_give_ap_one():
    metrics = evaluate([prediction(ann) for ann in ground_truth_persons()])
    assert metrics['AP'] == pytest.approx(1.0) and metrics['AR'] == pytest.approx(1.0)


def test_perturbed_predictions_give_lower_ap():
    rng = np.random.default_rng(0)
    predictions = []
    for ann in ground_truth_persons():
        kp = np.asarray(ann['keypoints'], np.float64).reshape(17, 3)[:, :2]
        side = np.sqrt(ann['area'])
        predictions.append(prediction(ann, kp + rng.normal(0, 0.08 * side, kp.shape)))
    metrics = evaluate(predictions)
    assert 0.0 < metrics['AP'] < 0.9
    assert evaluate(predictions[:6])['AR'] < metrics['AR'] + 1e-9  # fewer persons found: no higher recall


def test_duplicates_are_removed_by_oks_nms():
    persons = ground_truth_persons()
    exact = [prediction(ann) for ann in persons]
    shifted = [prediction(ann, np.asarray(ann['keypoints'], float).reshape(17, 3)[:, :2] + 1.0, bbox_score=0.5)
               for ann in persons]
    with_nms = evaluate(exact + shifted)
    without = evaluate(exact + shifted, nms_mode='none')
    assert with_nms['AP'] == pytest.approx(1.0)
    metric = CocoKeypointMetric(ann_file=ANN)
    metric.process({}, exact + shifted)
    assert len(metric.results_to_coco(metric.results)) == len(persons)  # every duplicate suppressed
    assert without['AP'] <= with_nms['AP']


def test_oks_helpers():
    rng = np.random.default_rng(1)
    reference = np.concatenate([rng.uniform(0, 100, (17, 2)), np.ones((17, 1))], 1)
    far = reference.copy()
    far[:, :2] += 200
    iou = oks_iou(reference, np.stack([reference, far]), 5000.0, np.array([5000.0, 5000.0]), np.full(17, 0.05))
    assert iou[0] == pytest.approx(1.0) and iou[1] < 1e-3
    keep = oks_nms(np.stack([reference, far, reference]), np.array([0.5, 0.4, 0.9]), np.full(3, 5000.0), 0.9)
    assert keep == [2, 1]


def test_no_predictions_give_zero():
    assert evaluate([])['AP'] == 0.0
