"""The tiny Mask R-CNN twin end to end: tools/train.py and tools/test.py on the synthetic set, COCO evaluation on
the real COCO sample (an image without annotations, a crowd region), inference pictures, and an official MAE
checkpoint loaded into the detector."""
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from mae_transfer.checkpoint import adapt as pretrained_module
from mae_transfer.datasets.synthetic import ensure_synthetic, synthetic_data_options
from mae_transfer.utils.configs import CONFIG_ROOT, build_model, config_task

from helpers.onnx_backends import metrics_of_both_backends
from helpers.paths import REPO, TEST_DATA

TINY = CONFIG_ROOT / 'det' / 'mask-rcnn_vit-tiny-p16_1xb4-lsj-600i_synthetic-128x128.py'
COCO_SAMPLE = TEST_DATA / 'coco_sample'
ITERS = 4


def data_options(root: Path) -> list:
    """--cfg-options that point the tiny config at a dataset folder (train, val and test, and the evaluators)."""
    return [f'{key}={value}' for key, value in synthetic_data_options('det', root).items()]


def run_tool(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope='module')
def synthetic_root(tmp_path_factory) -> Path:
    return ensure_synthetic('det', tmp_path_factory.mktemp('synthetic_det'), num_train=16, num_val=6, seed=0,
                            size_range=(96, 144))


@pytest.fixture(scope='module')
def trained(tmp_path_factory, synthetic_root) -> Path:
    """A work dir after a few iterations of tools/train.py, with a validation at the end."""
    work_dir = tmp_path_factory.mktemp('det_train')
    run_tool('tools/train.py', str(TINY), '--work-dir', str(work_dir), '--cfg-options', *data_options(synthetic_root),
             'train_dataloader.batch_size=2', f'train_cfg.max_iters={ITERS}', f'train_cfg.val_interval={ITERS}',
             f'default_hooks.checkpoint.interval={ITERS}', 'default_hooks.logger.interval=1',
             'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
             'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
             'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False')
    return work_dir


def test_tiny_twin_trains_validates_and_tests_through_the_tools(trained, synthetic_root, tmp_path):
    checkpoint = trained / f'iter_{ITERS}.pth'
    assert checkpoint.is_file()
    log = '\n'.join(path.read_text() for path in trained.rglob('*.log'))
    assert f'Iter(train) [{ITERS}/{ITERS}]' in log and 'loss_mask' in log and 'loss_rpn_cls' in log
    assert 'coco/bbox_mAP' in log and 'coco/segm_mAP' in log  # the validation at the end of training
    out = tmp_path / 'metrics.json'
    run_tool('tools/test.py', str(TINY), str(checkpoint), '--work-dir', str(tmp_path), '--out', str(out),
             '--cfg-options', *data_options(synthetic_root), 'test_dataloader.num_workers=0',
             'test_dataloader.persistent_workers=False')
    metrics = json.loads(out.read_text())
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP', 'coco/segm_mAP_50'):
        assert 0.0 <= metrics[key] <= 1.0, (key, metrics)
    saved = torch.load(checkpoint, map_location='cpu', weights_only=False)
    assert saved['meta']['dataset_meta']['classes'] == ('ellipse', 'rectangle', 'triangle')


def test_onnxruntime_backend_gives_the_pytorch_metrics(trained, synthetic_root, tmp_path, monkeypatch):
    """tools/test.py with the exported backbone + pyramid in onnxruntime: the same COCO AP (0.1 point = 0.001)."""
    options = [*data_options(synthetic_root), 'test_dataloader.num_workers=0',
               'test_dataloader.persistent_workers=False']
    pytorch, runtime, calls = metrics_of_both_backends(str(TINY), str(trained / f'iter_{ITERS}.pth'), tmp_path,
                                                       options, monkeypatch)
    assert calls > 0  # the test images went through the graph (one batch of 8 holds all 6)
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP'):
        assert abs(pytorch[key] - runtime[key]) <= 1e-3, (key, pytorch, runtime)


def test_infer_images_draws_pictures(trained, synthetic_root, tmp_path):
    from mae_transfer.apis import inference, init_model
    from mae_transfer.apis.detect import infer_images

    cfg = Config.fromfile(str(TINY))
    assert config_task(cfg) == 'det'  # how tools/infer.py picks this helper
    images = [synthetic_root / 'val' / '000000.jpg', COCO_SAMPLE / 'val2017' / '000000040083.jpg']
    checkpoint = str(trained / f'iter_{ITERS}.pth')
    predictions = inference(init_model(cfg, checkpoint), images)
    for prediction, path in zip(predictions, images):
        width, height = Image.open(path).size
        boxes = prediction.pred_instances.bboxes
        assert len(boxes) > 0 and prediction.pred_instances.masks.shape[1:] == (height, width)
        assert float(boxes[:, 2].max()) <= width + 1 and float(boxes[:, 3].max()) <= height + 1  # original pixels
    written = infer_images(cfg, checkpoint, [str(p) for p in images], str(tmp_path / 'pictures'), score_thr=0.0)
    assert [p.name for p in written] == ['000000.jpg', '000000040083.jpg']
    for picture, source in zip(written, images):
        drawn, original = np.asarray(Image.open(picture)), np.asarray(Image.open(source).convert('RGB'))
        assert drawn.shape == original.shape
        assert np.abs(drawn.astype(int) - original).mean() > 1.0  # boxes and masks were drawn


def test_coco_sample_evaluates_with_empty_image_and_crowd_region(tmp_path):
    from mmengine.runner import Runner

    cfg = Config.fromfile(str(TINY))
    root = f'{COCO_SAMPLE}/'
    ann_file = 'annotations/instances_val2017_sample.json'
    cfg.merge_from_dict({
        'model.roi_head.bbox_head.num_classes': 1, 'model.roi_head.mask_head.num_classes': 1,
        'test_dataloader.dataset.data_root': root, 'test_dataloader.dataset.ann_file': ann_file,
        'test_dataloader.dataset.data_prefix': dict(img='val2017/'),
        'test_dataloader.dataset.metainfo': dict(classes=('person', )),
        'test_dataloader.num_workers': 0, 'test_dataloader.persistent_workers': False,
        'test_evaluator.ann_file': root + ann_file,
    })
    cfg.test_dataloader.dataset.pipeline[1].scale = (320, 320)  # Resize: people large enough for the tiny model
    cfg.work_dir = str(tmp_path)
    cfg.visualizer.name = f'det_coco_sample_{id(tmp_path)}'
    torch.manual_seed(0)
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()  # untrained model: the point is that every step runs on real COCO files
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP', 'coco/segm_mAP_50'):
        assert 0.0 <= metrics[key] <= 1.0, (key, metrics)
    assert len(runner.test_dataloader.dataset) == 3  # the image without annotations is evaluated too


def test_coco_metric_ignores_the_crowd_region_and_counts_the_empty_image():
    """Ground truth fed back as predictions scores AP 1; a detection on the crowd region does not count
    against it, while one on the image without annotations does."""
    from mmdet.evaluation import CocoMetric
    from pycocotools.coco import COCO

    ann_file = str(COCO_SAMPLE / 'annotations' / 'instances_val2017_sample.json')
    coco = COCO(ann_file)

    def evaluate(extra_on_crowd: bool, extra_on_empty: bool) -> dict:
        metric = CocoMetric(ann_file=ann_file, metric=['bbox', 'segm'])
        metric.dataset_meta = dict(classes=('person', ))
        for image_id, image in coco.imgs.items():
            height, width = image['height'], image['width']
            boxes, masks, scores = [], [], []
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=image_id)):
                if ann['iscrowd'] and not extra_on_crowd:
                    continue
                x, y, w, h = ann['bbox']
                boxes.append([x, y, x + w, y + h])
                masks.append(coco.annToMask(ann))
                scores.append(0.99 if ann['iscrowd'] else 0.9)  # extra detections rank first
            if extra_on_empty and not coco.getAnnIds(imgIds=image_id):
                boxes, masks, scores = [[0, 0, 100, 100]], [np.ones((height, width), np.uint8)], [0.99]
            pred = dict(bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                        scores=torch.tensor(scores, dtype=torch.float32),
                        labels=torch.zeros(len(boxes), dtype=torch.long),
                        masks=torch.from_numpy(np.stack(masks)).bool() if masks else
                        torch.zeros(0, height, width, dtype=torch.bool))
            metric.process({}, [dict(img_id=image_id, ori_shape=(height, width), pred_instances=pred)])
        return metric.evaluate(len(coco.imgs))

    perfect = evaluate(False, False)
    assert perfect['coco/bbox_mAP'] == pytest.approx(1.0) and perfect['coco/segm_mAP'] == pytest.approx(1.0)
    on_crowd = evaluate(True, False)
    assert on_crowd['coco/bbox_mAP'] == pytest.approx(1.0) and on_crowd['coco/segm_mAP'] == pytest.approx(1.0)
    on_empty = evaluate(False, True)
    assert on_empty['coco/bbox_mAP'] < 1.0 and on_empty['coco/segm_mAP'] < 1.0


def test_official_mae_checkpoint_loads_into_the_detector_with_only_rel_pos_new(tmp_path, monkeypatch):
    from mae_transfer.models import mae_vit_tiny_patch16

    messages = []
    monkeypatch.setattr(pretrained_module, 'print_log',
                        lambda msg, logger=None, level=logging.INFO: messages.append((level, msg)))
    torch.manual_seed(1)
    mae = mae_vit_tiny_patch16(img_size=128)
    # The official mae_pretrain_vit_*.pth layout: {'model': encoder weights under the official names}
    encoder = {k: v for k, v in mae.state_dict().items() if not k.startswith(('decoder_', 'mask_token'))}
    path = tmp_path / 'mae_pretrain_vit_tiny.pth'
    torch.save({'model': encoder}, path)
    cfg = Config.fromfile(str(TINY))
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=str(path))
    detector = build_model(cfg)
    detector.init_weights()
    backbone_state = detector.backbone.state_dict()
    new_keys = sorted(k for k in backbone_state if k not in encoder)
    assert new_keys and all(k.endswith(('rel_pos_h', 'rel_pos_w')) for k in new_keys)
    for key, value in encoder.items():
        assert torch.equal(backbone_state[key], value), key
    assert not [msg for level, msg in messages if level >= logging.WARNING], messages
    (expected, ) = [msg for _, msg in messages if 'new by design' in msg]
    assert f'{len(new_keys)} keys are new by design' in expected
    assert any('loaded' in msg and str(path) in msg for _, msg in messages)
