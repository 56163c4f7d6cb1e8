"""End to end: the tiny pose config trains and tests with mmengine's Runner on a tiny synthetic set, and the
inference helper writes pictures (whole image, a box mapping, COCO detector results)."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from mae_transfer.apis import inference, init_model
from mae_transfer.apis.pose import infer_images, load_boxes
from mae_transfer.datasets import generate_pose_dataset, synthetic_data_options
from mae_transfer.utils.configs import CONFIG_ROOT, config_task

from helpers.onnx_backends import metrics_of_both_backends
from helpers.paths import TEST_DATA

TINY = CONFIG_ROOT / 'pose' / 'heatmap_vit-tiny-p16_1xb32-300i_synthetic-128x96.py'
REAL_IMAGE = TEST_DATA / 'coco_sample_pose' / 'val2017' / '000000000785.jpg'
ITERS = 4


def tiny_cfg(data_root: Path, work_dir: Path, use_detections: bool = False) -> Config:
    cfg = Config.fromfile(str(TINY))
    cfg.merge_from_dict(synthetic_data_options('pose', data_root))
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[name]
        loader.num_workers, loader.persistent_workers, loader.batch_size = 0, False, 4
    if use_detections:
        cfg.test_dataloader.dataset.bbox_file = f'{data_root}/person_detection_results_val.json'
        cfg.test_dataloader.dataset.bbox_score_thr = 0.3
    cfg.model.head.deconv_out_channels = (32, 32)
    cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = ITERS
    cfg.default_hooks.checkpoint.interval = ITERS
    cfg.default_hooks.logger.interval = 1
    cfg.param_scheduler[0].end = 2
    cfg.param_scheduler[1].milestones = [3]
    cfg.work_dir = str(work_dir)
    return cfg


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp('pose')
    paths = generate_pose_dataset(root / 'data', num_train=6, num_val=3, size_range=(96, 128), seed=3)
    cfg = tiny_cfg(root / 'data', root / 'work')
    runner = Runner.from_cfg(cfg)
    runner.train()
    checkpoint = root / 'work' / f'iter_{ITERS}.pth'
    return dict(root=root, cfg=cfg, checkpoint=checkpoint, paths=paths, runner=runner)


def test_synthetic_set_is_deterministic_and_coco_like(tmp_path, trained):
    again = generate_pose_dataset(tmp_path, num_train=6, num_val=3, size_range=(96, 128), seed=3)
    first = json.loads(trained['paths']['val'].read_text())
    assert json.loads(again['val'].read_text()) == first
    keypoints = np.array([ann['keypoints'] for ann in first['annotations']]).reshape(-1, 17, 3)
    assert first['categories'][0]['keypoints'][5] == 'left_shoulder'
    assert set(np.unique(keypoints[..., 2])) <= {0, 1, 2}
    for ann in first['annotations']:
        assert ann['num_keypoints'] == int((np.array(ann['keypoints'][2::3]) > 0).sum())
    train = json.loads(trained['paths']['train'].read_text())
    all_v = np.array([ann['keypoints'][2::3] for ann in train['annotations'] + first['annotations']])
    assert (all_v == 2).any() and ((all_v == 1).any() or (all_v == 0).any())  # some occluded or outside


def test_tiny_config_trains_and_tests(trained):
    assert config_task(trained['cfg']) == 'pose'
    assert trained['checkpoint'].is_file()
    assert 0.0 <= trained['runner'].message_hub.get_scalar('train/loss_kpt').current() < 1.0
    # tools/test.py's path: a fresh Runner loading the checkpoint, here on the mock detector's boxes
    cfg = tiny_cfg(trained['root'] / 'data', trained['root'] / 'test', use_detections=True)
    cfg.load_from = str(trained['checkpoint'])
    metrics = Runner.from_cfg(cfg).test()
    assert 0.0 <= metrics['coco/AP'] <= 1.0 and 'coco/AR' in metrics


def test_onnxruntime_backend_gives_the_pytorch_metrics(trained, tmp_path, monkeypatch):
    """tools/test.py with the exported heatmap graph in onnxruntime (flip test included): the same keypoint AP."""
    config = tmp_path / 'pose_tiny.py'
    tiny_cfg(trained['root'] / 'data', tmp_path / 'work').dump(str(config))
    pytorch, runtime, calls = metrics_of_both_backends(str(config), str(trained['checkpoint']), tmp_path, [],
                                                       monkeypatch)
    assert calls >= 2  # each test batch, and its flipped copy
    assert abs(pytorch['coco/AP'] - runtime['coco/AP']) <= 1e-3, (pytorch, runtime)


def test_infer_images_writes_pictures(trained, tmp_path):
    val_dir = trained['root'] / 'data' / 'val'
    images = [str(val_dir / 'pose_00000.png'), str(val_dir / 'pose_00001.png'), str(REAL_IMAGE)]
    boxes = {'pose_00000.png': [[10, 10, 60, 90], [40, 5, 50, 80]]}
    written = infer_images(trained['cfg'], str(trained['checkpoint']), images, str(tmp_path / 'out'),
                           score_thr=0.0, boxes=boxes)
    assert [p.name for p in written] == ['pose_00000.png', 'pose_00001.png', '000000000785.png']
    for path, source in zip(written, images):
        picture, original = cv2.imread(str(path)), cv2.imread(source)
        assert picture.shape == original.shape and not np.array_equal(picture, original)  # something was drawn

    detections = [dict(image_id=785, category_id=1, bbox=[280.0, 44.0, 219.0, 347.0], score=0.9),
                  dict(image_id=785, category_id=1, bbox=[0.0, 0.0, 50.0, 50.0], score=0.1)]
    chosen = load_boxes(detections, [str(REAL_IMAGE)], bbox_thr=0.3)[str(REAL_IMAGE)]
    assert chosen[0].shape == (1, 4) and chosen[1] == [0.9]
    model = init_model(trained['cfg'], str(trained['checkpoint']))
    persons, = inference(model, [cv2.imread(str(REAL_IMAGE))], boxes=[chosen[0]], box_scores=[chosen[1]])
    assert len(persons) == 1 and persons[0]['keypoints'].shape == (17, 2)
    x1, y1, x2, y2 = persons[0]['bbox']
    assert (x1, y1, x2, y2) == pytest.approx((280.0, 44.0, 499.0, 391.0))


def test_tools_test_reads_a_checkpoint_in_vitpose_layout(trained, tmp_path):
    """The trained model saved as ViTPose saves it (backbone.last_norm, no cls_token, keypoint_head.*) evaluates
    through tools/test.py with our config, with the same metrics as our own checkpoint."""
    import torch

    from mae_transfer.checkpoint.safe_load import safe_torch_load
    from mae_transfer.tools.test import main as test_main

    state = safe_torch_load(str(trained['checkpoint']))['state_dict']
    vitpose = {}
    for key, value in state.items():
        if key == 'backbone.cls_token':
            continue
        key = key.replace('backbone.norm.', 'backbone.last_norm.').replace('head.', 'keypoint_head.', 1) \
            if key.startswith(('backbone.norm.', 'head.')) else key
        vitpose[key] = value
    assert 'keypoint_head.final_layer.weight' in vitpose and 'backbone.last_norm.weight' in vitpose
    vitpose_path = tmp_path / 'vitpose_layout.pth'
    torch.save({'meta': {'mmcv_version': '1.3.9', 'epoch': 210}, 'state_dict': vitpose}, vitpose_path)
    cfg = tiny_cfg(trained['root'] / 'data', tmp_path / 'work')
    config_path = tmp_path / 'tiny_pose.py'
    cfg.dump(str(config_path))
    results = []
    for name, checkpoint in (('ours', trained['checkpoint']), ('vitpose', vitpose_path)):
        out = tmp_path / f'{name}.json'
        test_main([str(config_path), str(checkpoint), '--work-dir', str(tmp_path / name), '--out', str(out)])
        results.append(json.loads(out.read_text()))
    assert results[0] == results[1] and 'coco/AP' in results[0]
    ours, theirs = (init_model(trained['cfg'], str(path)).state_dict() for path in (trained['checkpoint'], vitpose_path))
    assert ours.keys() == theirs.keys()
    differ = [k for k in ours if not torch.equal(ours[k], theirs[k])]
    assert differ == ['backbone.cls_token']  # every weight the same; the unused cls token is zero (ViTPose has none)
