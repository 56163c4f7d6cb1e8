"""The segmentation recipes say what the MAE paper's UperNet recipe says (tests/test_configs.py builds them), and
the tiny twin is the same recipe at CPU size."""

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

from helpers.paths import REPO

SEG = REPO / 'configs' / 'seg'
BASE = SEG / 'upernet_vit-base-p16_8xb2-160ki_ade20k-512x512.py'
LARGE = SEG / 'upernet_vit-large-p16_8xb2-160ki_ade20k-512x512.py'
TINY = SEG / 'upernet_vit-tiny-p16_1xb8-200i_synthetic-128x128.py'


def _pipeline_types(pipeline):
    return [step['type'] for step in pipeline]


@pytest.mark.parametrize('path, arch, out_indices, layers, decay, checkpoint', [
    (BASE, 'base', (3, 5, 7, 11), 12, 0.65, 'checkpoints/mae_pretrain_vit_base.pth'),
    (LARGE, 'large', (7, 11, 15, 23), 24, 0.75, 'checkpoints/mae_pretrain_vit_large.pth')])
def test_full_recipes(path, arch, out_indices, layers, decay, checkpoint):
    cfg = Config.fromfile(str(path))
    assert cfg.default_scope == 'mmseg' and cfg.custom_imports.imports == ['mae_transfer']
    model = cfg.model
    assert model.type == 'EncoderDecoder'
    assert model.backbone.type == 'mae_transfer.MAEViT' and model.backbone.arch == arch
    assert tuple(model.backbone.out_indices) == out_indices and model.backbone.img_size == 512
    assert model.backbone.init_cfg == dict(type='Pretrained', checkpoint=checkpoint)
    assert model.neck.type == 'Feature2Pyramid' and list(model.neck.rescales) == [4, 2, 1, 0.5]
    assert model.decode_head.type == 'UPerHead' and model.auxiliary_head.type == 'FCNHead'
    assert model.decode_head.num_classes == model.auxiliary_head.num_classes == 150
    assert model.decode_head.norm_cfg.type == model.neck.norm_cfg.type == 'SyncBN'
    assert model.test_cfg == dict(mode='slide', crop_size=(512, 512), stride=(256, 256))  # mmseg's MAE config
    # the MAE paper's ADE20K backbone (BEiT's segmentation code, mmseg's MAE): rel-pos bias + layer scale 1.0
    assert model.backbone.use_rel_pos_bias is True and model.backbone.layer_scale_init_value == 1.0
    assert model.data_preprocessor.size == (512, 512)
    if arch == 'base':
        assert model.backbone.drop_path_rate == 0.1 and model.decode_head.channels == 768

    train = cfg.train_dataloader
    assert train.batch_size == 2 and cfg.auto_scale_lr.base_batch_size == 16  # 8 GPUs x 2
    assert train.dataset.type == 'ADE20KDataset' and train.dataset.data_root == 'data/ade/ADEChallengeData2016'
    assert train.dataset.data_prefix == dict(img_path='images/training', seg_map_path='annotations/training')
    assert cfg.test_dataloader.dataset.data_prefix.seg_map_path == 'annotations/validation'
    assert _pipeline_types(train.dataset.pipeline) == ['mae_transfer.LoadImageSkipUnreadable',
                                                        'mae_transfer.CheckLabelMap', 'LoadAnnotations', 'RandomResize',
                                                        'RandomCrop', 'RandomFlip', 'PhotoMetricDistortion',
                                                        'PackSegInputs']
    assert train.dataset.pipeline[2].reduce_zero_label and train.dataset.pipeline[4].crop_size == (512, 512)
    assert train.dataset.pipeline[3] == dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0),
                                             keep_ratio=True)  # mmseg's ADE20K values
    test_pipeline = cfg.test_dataloader.dataset.pipeline
    assert test_pipeline[1] == dict(type='Resize', scale=(2048, 512), keep_ratio=True)
    assert test_pipeline[2].type == 'mae_transfer.CheckLabelMap'
    assert test_pipeline[3] == dict(type='LoadAnnotations', reduce_zero_label=True)
    assert cfg.val_dataloader.dataset.pipeline == test_pipeline

    optim = cfg.optim_wrapper
    assert optim.type == 'OptimWrapper' and optim.constructor == 'mae_transfer.LayerDecayOptimWrapperConstructor'
    assert (optim.optimizer.type, optim.optimizer.lr, optim.optimizer.weight_decay) == ('AdamW', 1e-4, 0.05)
    assert optim.paramwise_cfg == dict(num_layers=layers, decay_rate=decay)
    warmup, poly = cfg.param_scheduler
    assert (warmup.type, warmup.begin, warmup.end) == ('LinearLR', 0, 1500)
    assert (poly.type, poly.begin, poly.end, poly.power, poly.eta_min) == ('PolyLR', 1500, 160000, 1.0, 0.0)
    assert cfg.train_cfg.max_iters == 160000 and cfg.test_evaluator.type == 'IoUMetric'


def test_tiny_twin_is_the_recipe_at_cpu_size():
    base, tiny = Config.fromfile(str(BASE)), Config.fromfile(str(TINY))
    assert tiny.model.backbone.arch == 'tiny' and tiny.model.backbone.img_size == 128
    assert tiny.model.backbone.init_cfg == dict(type='Pretrained', checkpoint=None)  # random; a child may name a file
    assert tiny.train_dataloader.dataset.data_root == 'data/synthetic_seg'
    for part in ('neck', 'decode_head', 'auxiliary_head'):
        assert tiny.model[part].norm_cfg.type == 'BN'  # one process: no SyncBN
        assert tiny.model[part].type == base.model[part].type
    assert tiny.model.test_cfg.mode == 'slide' and tiny.env_cfg.dist_cfg.backend == 'gloo'
    assert _pipeline_types(tiny.train_dataloader.dataset.pipeline) == _pipeline_types(
        base.train_dataloader.dataset.pipeline)
    assert tiny.train_dataloader.dataset.reduce_zero_label and tiny.val_dataloader.dataset.reduce_zero_label
    assert tiny.train_cfg.val_interval == tiny.train_cfg.max_iters  # one validation, at the end
    assert [s.type for s in tiny.param_scheduler] == [s.type for s in base.param_scheduler]
    assert tiny.param_scheduler[-1].end == tiny.train_cfg.max_iters


def test_tiny_layer_decay_groups_under_mmseg_scope():
    from mmengine.optim import build_optim_wrapper

    from mae_transfer.utils.configs import build_model
    cfg = Config.fromfile(str(TINY))
    model = build_model(cfg)
    with DefaultScope.overwrite_default_scope('mmseg'):
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    lr, decay, layers = cfg.optim_wrapper.optimizer.lr, 0.65, cfg.optim_wrapper.paramwise_cfg.num_layers
    params = dict(model.named_parameters())
    lr_of = {id(p): group['lr'] for group in wrapper.optimizer.param_groups for p in group['params']}
    assert lr_of[id(params['backbone.patch_embed.proj.weight'])] == pytest.approx(lr * decay ** (layers + 1))
    assert lr_of[id(params['backbone.blocks.3.mlp.fc1.weight'])] == pytest.approx(lr * decay)
    assert lr_of[id(params['decode_head.conv_seg.weight'])] == pytest.approx(lr)
    assert lr_of[id(params['neck.upsample_4x.0.weight'])] == pytest.approx(lr)
