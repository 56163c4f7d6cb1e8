"""The tiny UperNet twin trains on the synthetic ADE20K-layout set and is evaluated end to end with the shared
tools (tools/train.py, tools/test.py), reporting mmseg's mIoU, mAcc and aAcc."""
import json

import torch

from mae_transfer.datasets.synthetic import ensure_synthetic, synthetic_data_options

from helpers.onnx_backends import metrics_of_both_backends
from helpers.paths import REPO
from helpers.scripts import run_tool_script

TINY_CONFIG = REPO / 'configs' / 'seg' / 'upernet_vit-tiny-p16_1xb8-200i_synthetic-128x128.py'
ITERS = 4


def _run_tool(name, args, monkeypatch):
    run_tool_script(name, args, monkeypatch)


def test_tiny_twin_trains_and_tests_end_to_end(tmp_path, monkeypatch):
    data = ensure_synthetic('seg', tmp_path / 'synthetic_seg', num_train=8, num_val=3, seed=0, size_range=(64, 100))
    options = [f'{key}={value}' for key, value in synthetic_data_options('seg', data).items()]
    options += [f'{loader}.{key}' for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
                for key in ('num_workers=0', 'persistent_workers=False')]
    options += ['train_dataloader.batch_size=2', f'train_cfg.max_iters={ITERS}', f'train_cfg.val_interval={ITERS}',
                f'default_hooks.checkpoint.interval={ITERS}', 'default_hooks.logger.interval=1']
    work_dir = tmp_path / 'work'
    _run_tool('train.py', [str(TINY_CONFIG), '--work-dir', str(work_dir), '--cfg-options', *options], monkeypatch)

    checkpoint = work_dir / f'iter_{ITERS}.pth'
    assert checkpoint.is_file()
    saved = torch.load(checkpoint, map_location='cpu')
    assert saved['meta']['dataset_meta']['classes'] == ('stripes', 'mottle', 'ellipse', 'rectangle', 'triangle')
    assert any(key.startswith('backbone.blocks.3.') for key in saved['state_dict'])
    # the validation at the end of training logged the three metrics
    scalars = [json.loads(line) for line in next(work_dir.rglob('scalars.json')).read_text().splitlines()]
    assert {'mIoU', 'mAcc', 'aAcc'} <= set(scalars[-1]) and len(scalars) >= ITERS
    assert all(0 <= scalars[-1][key] <= 100 for key in ('mIoU', 'mAcc', 'aAcc'))
    losses = [entry['loss'] for entry in scalars if 'loss' in entry]
    assert len(losses) == ITERS and all(loss == loss and loss > 0 for loss in losses)

    out = tmp_path / 'metrics.json'
    test_options = [option for option in options if option.startswith('test_dataloader')]
    _run_tool('test.py', [str(TINY_CONFIG), str(checkpoint), '--work-dir', str(work_dir), '--out', str(out),
                          '--cfg-options', *test_options], monkeypatch)
    metrics = {key: float(value) for key, value in json.loads(out.read_text()).items()}
    assert set(metrics) == {'aAcc', 'mIoU', 'mAcc'}
    # the same weights on the same images as the validation after training
    assert all(abs(metrics[key] - scalars[-1][key]) < 1e-3 for key in metrics), (metrics, scalars[-1])  # float32 log

    # the exported graph in onnxruntime, sliding windows stitched by mmseg as above: the same metrics (0.1 point)
    pytorch, runtime, calls = metrics_of_both_backends(str(TINY_CONFIG), str(checkpoint), tmp_path / 'onnx',
                                                       test_options, monkeypatch)
    assert calls > 3  # at least one window per test image
    assert all(abs(pytorch[key] - runtime[key]) <= 0.1 for key in ('aAcc', 'mIoU', 'mAcc')), (pytorch, runtime)
