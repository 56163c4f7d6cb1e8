"""The detection configs hold the ViTDet recipe (tests/test_configs.py builds each model under scope mmdet)."""
import pytest
from mmengine.config import Config

from mae_transfer.utils.configs import CONFIG_ROOT, build_model

DET = CONFIG_ROOT / 'det'
BASE = DET / 'mask-rcnn_vit-base-p16_16xb4-amp-lsj-184ki_coco-1024x1024.py'
LARGE = DET / 'mask-rcnn_vit-large-p16_16xb4-amp-lsj-184ki_coco-1024x1024.py'
TINY = DET / 'mask-rcnn_vit-tiny-p16_1xb4-lsj-600i_synthetic-128x128.py'


def _types(pipeline) -> list:
    return [step['type'] for step in pipeline]


def test_vit_b_config_is_the_vitdet_recipe():
    cfg = Config.fromfile(str(BASE))
    assert cfg.default_scope == 'mmdet' and cfg.custom_imports.imports == ['mae_transfer']
    backbone = cfg.model.backbone
    assert backbone.type == 'mae_transfer.MAEViT' and backbone.arch == 'base'
    assert (backbone.window_size, tuple(backbone.global_attn_indexes)) == (14, (2, 5, 8, 11))
    assert backbone.use_rel_pos and backbone.rel_pos_img_size == 1024 and backbone.drop_path_rate == 0.1
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint='checkpoints/mae_pretrain_vit_base.pth')
    assert 'depth' not in backbone and 'norm_cfg' not in backbone  # nothing of the ResNet base left over
    assert cfg.model.neck.type == 'mae_transfer.SimpleFPN' and cfg.model.neck.in_channels == 768
    assert cfg.model.neck.num_outs == 5 and cfg.model.rpn_head.num_convs == 2
    roi = cfg.model.roi_head
    assert roi.bbox_head.type == 'Shared4Conv1FCBBoxHead'
    assert roi.bbox_head.norm_cfg.type == roi.mask_head.norm_cfg.type == 'mae_transfer.LayerNorm2d'
    assert roi.bbox_head.num_classes == roi.mask_head.num_classes == 80

    train = cfg.train_dataloader.dataset.pipeline
    assert _types(train) == ['mae_transfer.LoadImageSkipUnreadable', 'LoadAnnotations', 'RandomFlip', 'RandomResize',
                             'RandomCrop', 'FilterAnnotations', 'Pad', 'PackDetInputs']
    assert train[3].scale == (1024, 1024) and train[3].ratio_range == (0.1, 2.0) and train[3].keep_ratio
    assert train[4].crop_size == (1024, 1024) and train[6].size == (1024, 1024)
    assert cfg.test_dataloader.dataset.pipeline[1].scale == (1024, 1024)
    assert cfg.model.data_preprocessor.pad_size_divisor == 1024  # test images padded to 1024 x 1024
    assert cfg.train_dataloader.dataset.data_root == 'data/coco/'
    assert cfg.train_dataloader.dataset.ann_file == 'annotations/instances_train2017.json'
    assert cfg.test_evaluator.ann_file == 'data/coco/annotations/instances_val2017.json'
    assert cfg.test_evaluator.metric == ['bbox', 'segm']

    optim = cfg.optim_wrapper
    assert optim.type == 'AmpOptimWrapper' and optim.constructor == 'mae_transfer.LayerDecayOptimWrapperConstructor'
    assert (optim.optimizer.type, optim.optimizer.lr, optim.optimizer.weight_decay) == ('AdamW', 1e-4, 0.1)
    assert optim.paramwise_cfg == dict(num_layers=12, decay_rate=0.7, weight_decay_rule='vitdet')
    assert cfg.auto_scale_lr.base_batch_size == 64 == 16 * cfg.train_dataloader.batch_size
    assert cfg.train_cfg.type == 'IterBasedTrainLoop' and cfg.train_cfg.max_iters == 184375
    warmup, steps = cfg.param_scheduler
    assert warmup.type == 'LinearLR' and warmup.end == 250 and not warmup.by_epoch
    assert steps.type == 'MultiStepLR' and steps.milestones == [163889, 177546] and steps.gamma == 0.1


def test_vit_l_config_changes_only_the_size_dependent_values():
    base, large = Config.fromfile(str(BASE)), Config.fromfile(str(LARGE))
    backbone = large.model.backbone
    assert backbone.arch == 'large' and backbone.drop_path_rate == 0.4
    assert tuple(backbone.global_attn_indexes) == (5, 11, 17, 23) and backbone.window_size == 14
    assert backbone.init_cfg.checkpoint == 'checkpoints/mae_pretrain_vit_large.pth'
    assert large.model.neck.in_channels == 1024
    assert large.optim_wrapper.paramwise_cfg == dict(num_layers=24, decay_rate=0.8, weight_decay_rule='vitdet')
    for key in ('train_dataloader', 'param_scheduler', 'train_cfg', 'test_evaluator'):
        assert large[key] == base[key], key
    assert large.optim_wrapper.optimizer == base.optim_wrapper.optimizer


def test_tiny_twin_keeps_the_layout_at_cpu_size():
    cfg = Config.fromfile(str(TINY))
    backbone = cfg.model.backbone
    assert backbone.arch == 'tiny' and backbone.img_size == 128
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint=None)  # random; a child may name a file
    assert backbone.use_rel_pos and backbone.window_size > 0 and backbone.global_attn_indexes
    assert cfg.train_dataloader.dataset.data_root == 'data/synthetic_det/'
    assert cfg.optim_wrapper.type == 'OptimWrapper' and 'loss_scale' not in cfg.optim_wrapper  # --amp works on CPU
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.train_cfg.val_interval == cfg.train_cfg.max_iters  # one validation, at the end
    model = build_model(cfg)
    norms = {type(m.ln).__name__ for m in [*model.roi_head.bbox_head.shared_convs, *model.roi_head.mask_head.convs]}
    assert norms == {'LayerNorm2d'}
    assert len(model.rpn_head.rpn_conv) == 2 and len(model.roi_head.bbox_head.shared_convs) == 4


def test_tiny_twin_layer_decay_groups():
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope

    cfg = Config.fromfile(str(TINY))
    model = build_model(cfg)
    with DefaultScope.overwrite_default_scope('mmdet'):
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    params = dict(model.named_parameters())
    lr = cfg.optim_wrapper.optimizer.lr
    expected = {'backbone.patch_embed.proj.weight': (lr * 0.7 ** 5, 0.1),
                'backbone.blocks.0.attn.qkv.weight': (lr * 0.7 ** 4, 0.1),
                'backbone.blocks.3.mlp.fc1.weight': (lr * 0.7, 0.1),
                'backbone.blocks.3.attn.rel_pos_h': (lr * 0.7, 0.1),  # ViTDet decays the rel-pos tables
                'backbone.blocks.3.attn.qkv.bias': (lr * 0.7, 0.1),  # and biases
                'backbone.blocks.3.norm1.weight': (lr * 0.7, 0.0),
                'neck.output_convs.0.0.weight': (lr, 0.1),
                'neck.output_convs.0.1.weight': (lr, 0.1),  # channel LayerNorm: detectron2's LayerNorm, decayed
                'roi_head.bbox_head.shared_convs.0.conv.weight': (lr, 0.1),
                'roi_head.bbox_head.shared_convs.0.ln.weight': (lr, 0.1),
                'roi_head.bbox_head.fc_cls.bias': (lr, 0.1)}
    for name, (group_lr, weight_decay) in expected.items():
        (group, ) = [g for g in wrapper.optimizer.param_groups if any(p is params[name] for p in g['params'])]
        assert (group['lr'], group['weight_decay']) == pytest.approx((group_lr, weight_decay)), name
    # weight_decay_rule='vitdet': wd 0 only on the backbone's nn.LayerNorm parameters and pos_embed
    no_decay = {name for g in wrapper.optimizer.param_groups if g['weight_decay'] == 0 for name in g['param_names']}
    depth = cfg.optim_wrapper.paramwise_cfg.num_layers
    assert no_decay == {'backbone.pos_embed'} | {f'backbone.blocks.{i}.{norm}.{param}' for i in range(depth)
                                                 for norm in ('norm1', 'norm2') for param in ('weight', 'bias')}


def test_roi_features_are_the_roi_align_of_the_neck_maps():
    """The box and mask heads see the pixels under each RoI: RoIAlign of the neck's own outputs equals RoIAlign of
    the same values laid out contiguously. mmcv's kernel indexes the raw NCHW buffer, so a permuted view from
    LayerNorm2d scrambled every RoI feature (the tiny twin stayed at ~0.01 box AP until necks.py fixed it)."""
    import torch

    cfg = Config.fromfile(str(TINY))
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    rois = torch.tensor([[0, 10., 20., 60., 70.], [1, 30., 5., 90., 50.], [1, 0., 0., 128., 128.]])
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(2, 3, 128, 128))[:4]
        dense = tuple(f.contiguous() for f in feats)
        for extractor in (model.roi_head.bbox_roi_extractor, model.roi_head.mask_roi_extractor):
            torch.testing.assert_close(extractor(feats, rois), extractor(dense, rois))
