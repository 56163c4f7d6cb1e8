"""`tools/train.py --compile`: the tiny pretraining twin trains two iterations with its MAE compiled and gives the
eager run's losses; the compile time is logged. The 'eager' backend traces with dynamo without generating
kernels (inductor takes about a minute on 2 cores; `tools/benchmark.py pretrain --compile` measures it)."""
import json

import pytest
import torch

from mae_transfer.datasets.synthetic import generate_images
from mae_transfer.engine import compile_target
from mae_transfer.models import ViTClassifier
from mae_transfer.tools.train import main as train_main

TINY = 'pretrain/mae_vit-tiny-p16_1xb32-coslr-50e_synthetic-128x128.py'


def _losses(work_dir):
    lines = next(work_dir.rglob('scalars.json')).read_text().splitlines()
    return [json.loads(line)['loss'] for line in lines if 'loss' in json.loads(line)]


def test_compiled_training_matches_eager(tmp_path):
    images = generate_images(tmp_path / 'images', num_images=8, seed=0)
    options = ['model.img_size=64', 'train_cfg.max_epochs=1', 'train_dataloader.batch_size=4',
               'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
               f'train_dataloader.dataset.data_root={tmp_path / "images"}', 'train_dataloader.dataset.crop_size=64',
               'custom_hooks=[]', 'default_hooks.logger.interval=1', 'randomness.seed=0']
    assert len(images) == 8
    train_main([TINY, '--work-dir', str(tmp_path / 'eager'), '--cfg-options', *options])
    train_main([TINY, '--compile', 'eager', '--work-dir', str(tmp_path / 'compiled'), '--cfg-options', *options])
    eager, compiled = _losses(tmp_path / 'eager'), _losses(tmp_path / 'compiled')
    assert len(eager) == 2 and compiled == pytest.approx(eager, rel=1e-5)
    log = '\n'.join(path.read_text() for path in (tmp_path / 'compiled').rglob('*.log'))
    assert 'MaskedAutoencoderViT compiled' in log and 'the first iteration took' in log


def test_the_backbone_is_what_downstream_tasks_compile():
    classifier = ViTClassifier(backbone=dict(arch='tiny', img_size=32), num_classes=3)
    assert compile_target(classifier) is classifier.backbone
    with pytest.raises(ValueError, match='neither an MAE nor a backbone'):
        compile_target(torch.nn.Linear(2, 2))
