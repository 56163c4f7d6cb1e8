"""A head that mae_transfer does not ship, registered here into our MODELS registry, is built from a pose config
and trains: the pose model builds its backbone, head, loss and codec through our registries, under our own
default scope (one Runner step) and under mmdet's (one `train_step`). Misspelt types name the close ones."""
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from torch import nn

from mae_transfer.datasets import generate_pose_dataset
from mae_transfer.registry import MODELS
from mae_transfer.utils.configs import CONFIG_ROOT, build_model

TINY = CONFIG_ROOT / 'pose' / 'heatmap_vit-tiny-p16_1xb32-300i_synthetic-128x96.py'


@MODELS.register_module(force=True)
class OneConvTestHead(nn.Module):
    """Stride-16 features [N, C, h, w] -> heatmaps [N, K, 4h, 4w]: one 1x1 conv, then x4 nearest upsampling."""

    def __init__(self, in_channels: int, out_channels: int = 17) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(self.conv(x), scale_factor=4, mode='nearest')


def tiny_cfg(data_root, work_dir) -> Config:
    cfg = Config.fromfile(str(TINY))
    cfg.model.head = dict(type='OneConvTestHead', out_channels=17)  # in_channels: the backbone's width
    cfg.model.backbone.depth = cfg.optim_wrapper.paramwise_cfg.num_layers = 2
    loader = cfg.train_dataloader
    loader.num_workers, loader.persistent_workers, loader.batch_size = 0, False, 2
    loader.dataset.data_root = str(data_root) + '/'
    for name in ('val', 'test'):  # one training step, nothing else
        cfg[f'{name}_dataloader'] = cfg[f'{name}_cfg'] = cfg[f'{name}_evaluator'] = None
    cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = 1
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint.interval = 1
    cfg.work_dir = str(work_dir)
    return cfg


@pytest.fixture(scope='module')
def runner(tmp_path_factory):
    root = tmp_path_factory.mktemp('registered_head')
    generate_pose_dataset(root / 'data', num_train=4, num_val=2, size_range=(96, 128), seed=0)
    return Runner.from_cfg(tiny_cfg(root / 'data', root / 'work'))


def test_registered_head_trains_one_runner_step_under_our_scope(runner):
    assert isinstance(runner.model.head, OneConvTestHead)
    assert runner.model.head.conv.in_channels == runner.model.backbone.embed_dim
    before = runner.model.head.conv.weight.detach().clone()
    runner.train()
    assert torch.isfinite(torch.tensor(runner.message_hub.get_scalar('train/loss_kpt').current()))
    assert not torch.equal(runner.model.head.conv.weight.detach(), before)


def test_registered_head_is_found_under_mmdet_scope(runner):
    cfg = Config(dict(default_scope='mmdet', model=dict(runner.cfg.model)))
    cfg.model.type = 'mae_transfer.TopdownPoseEstimator'  # our model named in an mmdet config
    model = build_model(cfg)
    assert isinstance(model.head, OneConvTestHead)
    batch = next(iter(runner.train_dataloader))
    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    before = model.head.conv.weight.detach().clone()
    with DefaultScope.overwrite_default_scope('mmdet'):
        losses = model.train_step(batch, optim_wrapper)
    assert torch.isfinite(losses['loss'])
    assert not torch.equal(model.head.conv.weight.detach(), before)


@pytest.mark.parametrize('scope', ['mae_transfer', 'mmdet'])
def test_misspelt_head_and_codec_name_the_close_registered_ones(runner, scope):
    model_cfg = dict(runner.cfg.model, type='mae_transfer.TopdownPoseEstimator')
    with DefaultScope.overwrite_default_scope(scope):
        with pytest.raises(KeyError, match=r'OneConvTestHaed[\s\S]*did you mean[\s\S]*OneConvTestHead'):
            MODELS.build(dict(model_cfg, head=dict(type='OneConvTestHaed')))
        with pytest.raises(KeyError, match=r'UDPHeatmp[\s\S]*did you mean[\s\S]*UDPHeatmap'):
            MODELS.build(dict(model_cfg, codec=dict(type='UDPHeatmp')))
