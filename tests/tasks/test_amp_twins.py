"""`tools/train.py --amp` and `tools/test.py --amp` on a CPU, every task's tiny twin: two training iterations and
an evaluation under bf16 autocast, with mmcv's fp32-only CPU ops (nms, roi_align) fed fp32 at their boundary
(engine.autocast_boundaries)."""
import json

import pytest

from mae_transfer.datasets.synthetic import ensure_synthetic, synthetic_data_options
from mae_transfer.tools import test as test_tool
from mae_transfer.tools.train import main as train_main

TWINS = {
    'det': ('det/mask-rcnn_vit-tiny-p16_1xb4-lsj-600i_synthetic-128x128.py',
            dict(num_train=4, num_val=2, seed=0, size_range=(96, 128))),
    'seg': ('seg/upernet_vit-tiny-p16_1xb8-200i_synthetic-128x128.py',
            dict(num_train=4, num_val=2, seed=0, size_range=(64, 100))),
    'pose': ('pose/heatmap_vit-tiny-p16_1xb32-300i_synthetic-128x96.py',
             dict(num_train=4, num_val=2, seed=0, size_range=(96, 128))),
    'cls': ('cls/ft_vit-tiny-p16_1xb32-600i_synthetic-64x64.py',
            dict(train_per_class=1, val_per_class=1, image_size=(40, 48))),
}


@pytest.mark.parametrize('task', list(TWINS))
def test_tiny_twin_trains_two_amp_iterations_on_cpu(task, tmp_path):
    config, data = TWINS[task]
    root = ensure_synthetic(task, tmp_path / 'data', log=None, **data)
    options = [f'{key}={value}' for key, value in synthetic_data_options(task, root).items()]
    options += [f'{loader}.{key}' for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
                for key in ('num_workers=0', 'persistent_workers=False')]
    options += ['train_dataloader.batch_size=2', 'train_cfg.max_iters=2', 'train_cfg.val_interval=1000',
                'default_hooks.logger.interval=1', 'default_hooks.checkpoint.interval=2']
    train_main([config, '--amp', '--work-dir', str(tmp_path / 'work'), '--cfg-options', *options])
    scalars = [json.loads(line) for line in next((tmp_path / 'work').rglob('scalars.json')).read_text().splitlines()]
    losses = [entry['loss'] for entry in scalars if 'loss' in entry]
    assert len(losses) == 2 and all(loss == loss and 0 < loss < 100 for loss in losses)  # finite
    assert (tmp_path / 'work' / 'iter_2.pth').is_file()
    test_options = [option for option in options if option.startswith('test_')]
    test_tool.main([config, str(tmp_path / 'work' / 'iter_2.pth'), '--amp', '--work-dir', str(tmp_path / 'test'),
               '--out', str(tmp_path / 'metrics.json'), '--cfg-options', *test_options])
    metrics = json.loads((tmp_path / 'metrics.json').read_text())
    assert metrics and all(value == value for value in metrics.values())  # evaluated, no NaN
