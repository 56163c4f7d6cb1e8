"""Segmentation data: the synthetic ADE20K-layout generator, reduce_zero_label through mmseg's dataset, and mmseg's
IoUMetric on label maps converted from real COCO person masks."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope
from PIL import Image

from mae_transfer.datasets.synthetic.ade import CLASSES, METAINFO, generate_ade_dataset

from helpers.paths import REPO, TEST_DATA

TINY_CONFIG = REPO / 'configs' / 'seg' / 'upernet_vit-tiny-p16_1xb8-200i_synthetic-128x128.py'
COCO_DIR = TEST_DATA / 'seg_coco_person'


def _files(root: Path):
    return sorted(path.relative_to(root) for path in root.rglob('*') if path.is_file())


def test_generator_writes_ade_layout_deterministically(tmp_path):
    first = generate_ade_dataset(tmp_path / 'a', num_train=4, num_val=2, seed=3, size_range=(40, 90))
    generate_ade_dataset(tmp_path / 'b', num_train=4, num_val=2, seed=3, size_range=(40, 90))
    generate_ade_dataset(tmp_path / 'c', num_train=4, num_val=2, seed=4, size_range=(40, 90))
    a, b, c = tmp_path / 'a', tmp_path / 'b', tmp_path / 'c'
    assert [len(first['training']), len(first['validation'])] == [4, 2]
    assert _files(a) == _files(b) == _files(c)
    assert {str(path.parent) for path in _files(a)} == {
        'images/training', 'images/validation', 'annotations/training', 'annotations/validation'}
    assert all((a / path).read_bytes() == (b / path).read_bytes() for path in _files(a))
    assert any((a / path).read_bytes() != (c / path).read_bytes() for path in _files(a))

    shapes, labels = set(), set()
    for image_path in first['training'] + first['validation']:
        label_path = Path(str(image_path).replace('/images/', '/annotations/')).with_suffix('.png')
        image, label_map = Image.open(image_path), np.asarray(Image.open(label_path))
        assert image.mode == 'RGB' and label_map.ndim == 2 and label_map.shape == (image.height, image.width)
        shapes.add(label_map.shape)
        labels |= set(np.unique(label_map).tolist())
        assert 0 in label_map  # outlines are 'other', as ADE20K's object boundaries
    assert labels <= set(range(len(CLASSES) + 1)) and len(labels) >= 4
    assert any(h != w for h, w in shapes) and len(shapes) > 1
    # validation scenes are not copies of training scenes
    first_images = [(a / 'images' / split / 'synth_00000.jpg').read_bytes() for split in ('training', 'validation')]
    assert first_images[0] != first_images[1]


def test_tiny_config_reads_the_generated_set_with_reduce_zero_label(tmp_path):
    generate_ade_dataset(tmp_path, num_train=3, num_val=1, seed=0, size_range=(40, 70))
    cfg = Config.fromfile(str(TINY_CONFIG))
    assert cfg.train_dataloader.dataset.metainfo == {key: tuple(value) if key == 'classes' else value
                                                      for key, value in METAINFO.items()}
    dataset_cfg = cfg.train_dataloader.dataset
    dataset_cfg.update(data_root=str(tmp_path), pipeline=[
        dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', reduce_zero_label=True)])
    from mmseg.registry import DATASETS
    with DefaultScope.overwrite_default_scope('mmseg'):
        dataset = DATASETS.build(dataset_cfg)
    assert len(dataset) == 3 and dataset.metainfo['classes'] == CLASSES
    for index in range(len(dataset)):
        sample = dataset[index]
        raw = np.asarray(Image.open(sample['seg_map_path']))
        assert sample['img'].shape[:2] == raw.shape
        # ADE20K convention: 0 (other) becomes the ignore index 255, class k becomes k - 1
        np.testing.assert_array_equal(sample['gt_seg_map'], np.where(raw == 0, 255, raw.astype(np.int64) - 1))


# ---- real data: COCO person masks as ADE-style label maps ------------------------------------------------------


def coco_person_label_maps(annotation_file: Path):
    """{file name: label map [H, W] uint8} with 0 = unlabeled (crowd), 1 = background, 2 = person (pycocotools)."""
    from pycocotools.coco import COCO
    coco = COCO(str(annotation_file))
    maps = {}
    for image_id in sorted(coco.getImgIds()):
        info = coco.loadImgs(image_id)[0]
        label_map = np.ones((info['height'], info['width']), dtype=np.uint8)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=image_id, catIds=coco.getCatIds(catNms=['person']))):
            label_map[coco.annToMask(ann) > 0] = 0 if ann['iscrowd'] else 2
        maps[info['file_name']] = label_map
    return maps


def box_predictions(annotation_file: Path):
    """{file name: predicted class map [H, W]} (0 = background, 1 = person) filling each person's box."""
    data = json.loads(annotation_file.read_text())
    images = {image['id']: image for image in data['images']}
    preds = {image['file_name']: np.zeros((image['height'], image['width']), dtype=np.int64)
             for image in data['images']}
    for ann in data['annotations']:
        x, y, w, h = ann['bbox']
        preds[images[ann['image_id']]['file_name']][int(y):int(np.ceil(y + h)), int(x):int(np.ceil(x + w))] = 1
    return preds


def _evaluate(gt_maps, pred_maps):
    """mmseg IoUMetric over pairs of reduced gt [H, W] (255 = ignore) and predictions [H, W]."""
    import torch
    from mmseg.evaluation import IoUMetric
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dict(classes=('background', 'person'))
    for gt, pred in zip(gt_maps, pred_maps):
        metric.process([], [dict(pred_sem_seg=dict(data=torch.from_numpy(pred)[None]),
                                 gt_sem_seg=dict(data=torch.from_numpy(gt)[None]))])
    return metric.compute_metrics(metric.results)


def test_coco_person_masks_in_ade_layout_evaluate_with_iou_metric(tmp_path):
    annotation_file = COCO_DIR / 'person_masks_x0.25.json'
    label_maps = coco_person_label_maps(annotation_file)
    assert len(label_maps) == 4
    for split in ('training', 'validation'):
        (tmp_path / 'images' / split).mkdir(parents=True)
        (tmp_path / 'annotations' / split).mkdir(parents=True)
    for name, label_map in label_maps.items():
        assert set(np.unique(label_map)) == {1, 2}  # every sample image shows people
        shutil.copy(COCO_DIR / name, tmp_path / 'images' / 'validation' / name)
        Image.fromarray(label_map).save(tmp_path / 'annotations' / 'validation' / name.replace('.jpg', '.png'))

    # read back through mmseg's dataset + ADE pipeline (reduce_zero_label), as a real ADE-layout set would be
    from mmseg.registry import DATASETS
    with DefaultScope.overwrite_default_scope('mmseg'):
        dataset = DATASETS.build(dict(
            type='BaseSegDataset', data_root=str(tmp_path), img_suffix='.jpg', seg_map_suffix='.png',
            reduce_zero_label=True, metainfo=dict(classes=('background', 'person')),
            data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
            pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', reduce_zero_label=True)]))
    assert len(dataset) == 4
    samples = [dataset[i] for i in range(4)]
    gts = [sample['gt_seg_map'].astype(np.int64) for sample in samples]
    preds = box_predictions(annotation_file)
    pred_list = [preds[Path(sample['img_path']).name] for sample in samples]
    for sample, gt in zip(samples, gts):
        assert sample['img'].shape[:2] == gt.shape

    # independent computation of per-class IoU / accuracy over the whole set
    inter, union, area_gt = np.zeros(2), np.zeros(2), np.zeros(2)
    for gt, pred in zip(gts, pred_list):
        valid = gt != 255
        for cls in range(2):
            g, p = (gt == cls) & valid, (pred == cls) & valid
            inter[cls] += (g & p).sum()
            union[cls] += (g | p).sum()
            area_gt[cls] += g.sum()
    metrics = _evaluate(gts, pred_list)
    assert set(metrics) == {'aAcc', 'mIoU', 'mAcc'}
    assert metrics['mIoU'] == pytest.approx(100 * np.mean(inter / union), abs=0.01)
    assert metrics['mAcc'] == pytest.approx(100 * np.mean(inter / area_gt), abs=0.01)
    assert metrics['aAcc'] == pytest.approx(100 * inter.sum() / area_gt.sum(), abs=0.01)
    assert 20 < metrics['mIoU'] < 95  # boxes cover people but also background around them

    perfect = _evaluate(gts, [np.where(gt == 255, 0, gt) for gt in gts])
    assert perfect['mIoU'] == pytest.approx(100.0)

    # pixels labelled 0 (unlabeled) do not count, whatever is predicted there
    half = gts[0].shape[1] // 2
    ignored = [gt.copy() for gt in gts]
    ignored[0][:, :half] = 255
    changed = [pred.copy() for pred in pred_list]
    changed[0][:, :half] = 1 - changed[0][:, :half]
    assert _evaluate(ignored, changed) == _evaluate(ignored, pred_list)
    assert _evaluate(gts, changed) != _evaluate(gts, pred_list)
