"""The synthetic COCO instance generator and the COCO sample used by the detection tests."""
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO

from mae_transfer.datasets.synthetic.coco import (CLASSES, generate_coco_instances, polygon_mask,
                                                  random_instance_scene)

from helpers.paths import TEST_DATA

COCO_SAMPLE = TEST_DATA / 'coco_sample'


def _files(root: Path) -> dict:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob('*')) if path.is_file()}


def test_generator_is_deterministic_by_seed_and_writes_the_coco_layout(tmp_path):
    options = dict(num_train=6, num_val=3, size_range=(64, 96))
    first = generate_coco_instances(tmp_path / 'a', seed=3, **options)
    generate_coco_instances(tmp_path / 'b', seed=3, **options)
    generate_coco_instances(tmp_path / 'c', seed=4, **options)
    assert first == {'train': tmp_path / 'a/annotations/instances_train.json',
                     'val': tmp_path / 'a/annotations/instances_val.json'}
    files_a = _files(tmp_path / 'a')
    assert sorted(files_a) == sorted(['annotations/instances_train.json', 'annotations/instances_val.json',
                                      *[f'train/{i:06d}.jpg' for i in range(6)],
                                      *[f'val/{i:06d}.jpg' for i in range(3)]])
    assert files_a == _files(tmp_path / 'b')
    assert files_a['annotations/instances_train.json'] != _files(tmp_path / 'c')['annotations/instances_train.json']
    # the two splits draw from different streams
    assert files_a['train/000000.jpg'] != files_a['val/000000.jpg']


def test_annotations_are_valid_coco_with_empty_images_and_occlusions(tmp_path):
    ann_file = generate_coco_instances(tmp_path, num_train=40, num_val=0, seed=0, size_range=(80, 112),
                                       empty_fraction=0.2)['train']
    coco = COCO(str(ann_file))
    assert [cat['name'] for cat in coco.loadCats(coco.getCatIds())] == list(CLASSES)
    per_image = [len(coco.getAnnIds(imgIds=image_id)) for image_id in coco.getImgIds()]
    assert 0 in per_image and max(per_image) > 1  # images without objects and images with several
    assert {ann['category_id'] for ann in coco.anns.values()} == {1, 2, 3}
    for ann in coco.anns.values():
        image = coco.imgs[ann['image_id']]
        mask = coco.annToMask(ann).astype(bool)  # rasterised from the polygons
        x, y, w, h = ann['bbox']
        assert ann['iscrowd'] == 0 and mask.any()
        assert 0 <= x and 0 <= y and x + w <= image['width'] and y + h <= image['height']
        ys, xs = np.nonzero(mask)
        assert xs.min() >= x - 1 and xs.max() <= x + w and ys.min() >= y - 1 and ys.max() <= y + h
        assert abs(mask.sum() - ann['area']) <= 0.2 * ann['area'] + 10  # polygon vs drawn pixels
    assert all(path.stat().st_size > 0 for path in (tmp_path / 'train').iterdir())


def test_scene_occlusions_leave_visible_parts_and_the_drawn_pixels_match():
    rng = np.random.default_rng(0)
    occluded = 0
    for _ in range(30):
        image, instances = random_instance_scene(rng, 96, 128, max_shapes=5, empty_fraction=0.0, min_visible=0.5)
        assert image.size == (128, 96) and 1 <= len(instances) <= 5
        for index, inst in enumerate(instances):
            full = polygon_mask(inst['polygon'], 96, 128)
            assert not (inst['mask'] & ~full).any()  # visible part of the shape itself
            assert inst['mask'].sum() >= 0.5 * full.sum()
            later = np.zeros_like(full)
            for other in instances[index + 1:]:
                later |= polygon_mask(other['polygon'], 96, 128)
            assert np.array_equal(inst['mask'], full & ~later)  # exactly what later shapes leave uncovered
            assert inst['occluded'] == bool((full & later).any())
            occluded += inst['occluded']
    assert occluded > 0


def test_coco_sample_has_an_image_without_annotations_and_a_crowd_region():
    coco = COCO(str(COCO_SAMPLE / 'annotations' / 'instances_val2017_sample.json'))
    empty = [i for i in coco.getImgIds() if not coco.getAnnIds(imgIds=i)]
    crowd = [a for a in coco.anns.values() if a['iscrowd']]
    assert len(empty) == 1 and len(crowd) == 1
    assert isinstance(crowd[0]['segmentation'], dict) and coco.annToMask(crowd[0]).sum() > 0
    for image in coco.imgs.values():
        assert (COCO_SAMPLE / 'val2017' / image['file_name']).is_file()
    assert json.loads((COCO_SAMPLE / 'annotations' / 'instances_val2017_sample.json').read_text())['categories'] \
        == [dict(id=1, name='person', supercategory='person')]


@pytest.mark.parametrize('split', ['train', 'val'])
def test_mmdet_coco_dataset_reads_the_synthetic_set_through_the_tiny_pipelines(tmp_path, split):
    from mmdet.registry import DATASETS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mae_transfer.utils.configs import CONFIG_ROOT

    generate_coco_instances(tmp_path, num_train=8, num_val=4, seed=1, size_range=(96, 144))
    cfg = Config.fromfile(str(CONFIG_ROOT / 'det' / 'mask-rcnn_vit-tiny-p16_1xb4-lsj-600i_synthetic-128x128.py'))
    dataset_cfg = (cfg.train_dataloader if split == 'train' else cfg.val_dataloader).dataset
    dataset_cfg.data_root = str(tmp_path)
    init_default_scope('mmdet')
    dataset = DATASETS.build(dataset_cfg)
    coco = COCO(str(tmp_path / 'annotations' / f'instances_{split}.json'))
    non_empty = [i for i in coco.getImgIds() if coco.getAnnIds(imgIds=i)]
    # training drops the images without objects (filter_empty_gt), evaluation keeps every image
    assert len(dataset) == (len(non_empty) if split == 'train' else len(coco.getImgIds()))
    assert dataset.metainfo['classes'] == CLASSES
    item = dataset[0]
    if split == 'val':  # resized to fit 128 x 128; the model's data preprocessor pads
        assert max(item['inputs'].shape[1:]) == 128
    else:  # LSJ: resized, cropped and padded to 128 x 128
        assert tuple(item['inputs'].shape) == (3, 128, 128)
        gt = item['data_samples'].gt_instances
        assert len(gt.masks) == len(gt.bboxes) == len(gt.labels)  # a random crop may leave none
        assert gt.masks.masks.shape[1:] == (128, 128) and set(gt.labels.tolist()) <= {0, 1, 2}
