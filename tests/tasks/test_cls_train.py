"""The tiny configs of the three protocols run end to end with the mmengine Runner on a generated class-folder
set (a few iterations: wiring, not accuracy; tools/benchmark.py cls measures accuracy), and infer_images draws
the trained model's top-5."""
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mae_transfer.apis.classify import infer_images
from mae_transfer.checkpoint import safe_torch_load
from mae_transfer.datasets.synthetic import ensure_synthetic, synthetic_data_options
from mae_transfer.utils.configs import CONFIG_ROOT, config_task

from helpers.onnx_backends import metrics_of_both_backends

TINY_CONFIGS = {
    'finetune': 'cls/ft_vit-tiny-p16_1xb32-600i_synthetic-64x64.py',
    'linear_probe': 'cls/linear-probe_vit-tiny-p16_1xb64-300i_synthetic-64x64.py',
    'partial_finetune': 'cls/partial-ft-last2_vit-tiny-p16_1xb32-600i_synthetic-64x64.py',
}


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return ensure_synthetic('cls', tmp_path_factory.mktemp('synthetic_cls'), train_per_class=2, val_per_class=1,
                            image_size=(40, 48))


def tiny_cfg(name, data_root, work_dir, iters=3):
    cfg = Config.fromfile(str(CONFIG_ROOT / TINY_CONFIGS[name]))
    cfg.work_dir = str(work_dir)
    cfg.merge_from_dict(synthetic_data_options('cls', data_root))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
        cfg[loader].batch_size = 4
        cfg[loader].dataset.transform.input_size = 32
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters
    cfg.default_hooks.checkpoint.interval = iters
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
    cfg.default_hooks.logger.interval = 1
    return cfg


@pytest.mark.parametrize('protocol', list(TINY_CONFIGS))
def test_tiny_config_trains_and_validates(protocol, data_root, tmp_path, monkeypatch):
    cfg = tiny_cfg(protocol, data_root, tmp_path)
    assert config_task(cfg) == 'cls' and cfg.model.protocol == protocol
    runner = Runner.from_cfg(cfg)
    before = {k: v.clone() for k, v in runner.model.state_dict().items()}
    runner.train()
    metrics = runner.val_loop.run()
    assert {'accuracy/top1', 'accuracy/top5'} <= set(metrics)
    assert 0.0 <= metrics['accuracy/top1'] <= metrics['accuracy/top5'] <= 100.0
    after = runner.model.state_dict()
    changed = {k for k in after if after[k].is_floating_point() and not torch.equal(before[k], after[k])}
    if protocol == 'linear_probe':
        assert changed == {'head.0.running_mean', 'head.0.running_var', 'head.1.weight', 'head.1.bias'}
    elif protocol == 'partial_finetune':
        assert 'backbone.blocks.3.attn.qkv.weight' in changed and 'head.weight' in changed
        assert not any(k.startswith(('backbone.blocks.0.', 'backbone.blocks.1.', 'backbone.patch_embed'))
                       for k in changed)
    else:
        assert {'backbone.patch_embed.proj.weight', 'backbone.blocks.0.attn.qkv.weight', 'head.weight'} <= changed
    checkpoint = safe_torch_load(str(tmp_path / 'iter_3.pth'), map_location='cpu')
    assert checkpoint['meta']['dataset_meta']['classes'][0] == 'arrow'
    if protocol == 'linear_probe':  # the BatchNorm statistics are saved with the model
        assert torch.equal(checkpoint['state_dict']['head.0.running_mean'], after['head.0.running_mean'])
    if protocol == 'finetune':
        images = sorted((data_root / 'val').rglob('*.png'))[:2]
        written = infer_images(cfg, str(tmp_path / 'iter_3.pth'), [str(p) for p in images], str(tmp_path / 'infer'))
        assert [p.name for p in written] == [f'{p.stem}.png' for p in images]
        assert all(p.stat().st_size > 0 for p in written)
        # the exported classifier in onnxruntime through tools/test.py: the same accuracy (0.1 point)
        config = tmp_path / 'cls_tiny.py'
        cfg.dump(str(config))
        pytorch, runtime, calls = metrics_of_both_backends(str(config), str(tmp_path / 'iter_3.pth'),
                                                           tmp_path / 'onnx', [], monkeypatch)
        assert calls > 0 and abs(pytorch['accuracy/top1'] - runtime['accuracy/top1']) <= 0.1, (pytorch, runtime)
