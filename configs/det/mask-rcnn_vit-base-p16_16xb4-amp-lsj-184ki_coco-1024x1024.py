# Mask R-CNN on an MAE-pretrained ViT-B/16, the ViTDet recipe (Li et al. 2022, "Exploring Plain Vision Transformer
# Backbones for Object Detection"): COCO train2017, 100 epochs of large-scale jitter at 1024 px.
# Reference result of this recipe: 51.6 box AP / 45.9 mask AP on COCO val2017.
# Checked against detectron2's projects/ViTDet/configs/COCO/mask_rcnn_vitdet_b_100ep.py (with
# configs/common/models/mask_rcnn_vitdet.py, configs/common/optim.py and projects/ViTDet/configs/common/
# coco_loader_lsj.py) at facebookresearch/detectron2 commit 02b5c4e295e990042a714712c21dc79b731e8833; the
# remaining differences and their expected effect are listed in docs/detection.md. detectron2's released
# model_final_*.pkl evaluate whole in this config, heads included (tests/models/test_detectron2_vitdet_parity.py).
#
#   mae-transfer dist-train det/mask-rcnn_vit-base-p16_16xb4-amp-lsj-184ki_coco-1024x1024.py 16       # 16 GPUs x 4 images
#   mae-transfer test det/mask-rcnn_vit-base-p16_16xb4-amp-lsj-184ki_coco-1024x1024.py work_dirs/.../iter_184375.pth
#
# Data: data/coco/{train2017,val2017}/ and data/coco/annotations/instances_{train,val}2017.json; point elsewhere
# with --cfg-options train_dataloader.dataset.data_root=... (and val/test dataloaders and evaluators alike).
_base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py', 'mmdet::_base_/default_runtime.py']
default_scope = 'mmdet'
custom_imports = dict(imports=['mae_transfer'], allow_failed_imports=False)

image_size = (1024, 1024)
# ViTDet puts LayerNorm (eps 1e-6) into every conv of the neck and the RoI heads; mmcv's build_norm_layer finds
# our channel LayerNorm through its scope prefix.
head_norm_cfg = dict(type='mae_transfer.LayerNorm2d', eps=1e-6, requires_grad=True)

# ---- model -----------------------------------------------------------------------------------------------
model = dict(
    # Test images (longer side 1024) are padded to 1024 x 1024 here, as ViTDet does, rather than by a Pad in the
    # test pipeline: that would make img_shape the padded size, and boxes in the padding would survive clipping.
    # Training images are already 1024 x 1024 (LSJ crop + Pad).
    data_preprocessor=dict(pad_size_divisor=1024),
    backbone=dict(
        _delete_=True,
        type='mae_transfer.MAEViT',
        arch='base',
        img_size=224,  # MAE pretraining grid (14 x 14); pos_embed is resized to each input's grid on the fly
        out_indices=(-1, ),  # SimpleFPN works from the last block's stride-16 map only
        drop_path_rate=0.1,
        window_size=14,
        global_attn_indexes=(2, 5, 8, 11),  # the other 8 blocks attend within 14 x 14 windows
        use_rel_pos=True,  # decomposed relative positions, zero-initialised (new by design, not in MAE)
        rel_pos_img_size=1024,  # global blocks' tables sized for the 64 x 64 grid of 1024 px inputs
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/mae_pretrain_vit_base.pth')),
    neck=dict(
        _delete_=True,
        type='mae_transfer.SimpleFPN',  # strides 4, 8, 16, 32 (+ 64 by pooling) from the stride-16 map
        in_channels=768,
        out_channels=256,
        scale_factors=(4.0, 2.0, 1.0, 0.5),
        num_outs=5),
    rpn_head=dict(num_convs=2),  # ViTDet: two 3x3 convs in the RPN
    roi_head=dict(
        bbox_head=dict(
            type='Shared4Conv1FCBBoxHead',  # 4 convs + 1 fc instead of 2 fc
            conv_out_channels=256,
            norm_cfg=head_norm_cfg),
        mask_head=dict(norm_cfg=head_norm_cfg)))

# ---- data: large-scale jitter (LSJ) ----------------------------------------------------------------------
dataset_type = 'mae_transfer.CheckedCocoDataset'  # mmdet's CocoDataset + clear annotation errors
data_root = 'data/coco/'
backend_args = None
train_pipeline = [
    dict(type='mae_transfer.LoadImageSkipUnreadable', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.1, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=image_size, recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='Pad', size=image_size, pad_val=dict(img=(114, 114, 114))),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=image_size, keep_ratio=True),  # longer side 1024
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
batch_size = 4  # per GPU: 16 GPUs x 4 = the recipe's 64 images per iteration
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_val2017.json',
    metric=['bbox', 'segm'],
    format_only=False,
    backend_args=backend_args)
test_evaluator = val_evaluator

# ---- optimisation ----------------------------------------------------------------------------------------
optim_wrapper = dict(
    # fp16 autocast + dynamic loss scaling; GPU only in mmengine. On a CPU use
    # --cfg-options optim_wrapper.type=mae_transfer.AutocastOptimWrapper (bf16) or optim_wrapper.type=OptimWrapper.
    type='AmpOptimWrapper',
    constructor='mae_transfer.LayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1),
    # 'vitdet': as detectron2's get_default_optimizer_params(weight_decay_norm=0) + pos_embed override, wd 0
    # only on the backbone's nn.LayerNorm params and pos_embed; biases, rel-pos and the neck's / heads'
    # channel LayerNorms are decayed.
    paramwise_cfg=dict(num_layers=12, decay_rate=0.7, weight_decay_rule='vitdet'))
# The lr above is for 64 images per iteration; tools/train.py rescales it to GPUs x batch_size x accumulation.
auto_scale_lr = dict(enable=True, base_batch_size=64)

max_iters = 184375  # 100 epochs = 184375 iters x 64 images / 118k train2017 images
interval = 5000  # checkpoint and validation every 5000 iterations, and once more at the very end
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=250),
    dict(
        type='MultiStepLR',
        by_epoch=False,
        begin=0,
        end=max_iters,
        milestones=[163889, 177546],  # epochs 88 and 96: 163889 x 64 / 118k, 177546 x 64 / 118k
        gamma=0.1),
]
train_cfg = dict(
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=interval,
    # after the last multiple of 5000 (180000), validate only at max_iters
    dynamic_intervals=[(max_iters // interval * interval + 1, max_iters)])
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# ---- runtime ---------------------------------------------------------------------------------------------
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=interval, save_last=True, max_keep_ckpts=3))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
