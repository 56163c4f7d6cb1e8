# Tiny CPU twin of the ViTDet Mask R-CNN recipe, for the tests and the demo: the same model layout (MAEViT with
# window + global attention and rel-pos, SimpleFPN, 2-conv RPN, 4conv1fc box head and mask head with LayerNorm),
# the same LSJ pipeline, optimiser and step schedule, at a size that trains in about 2 minutes on 2 CPU cores.
#
#   python -m mae_transfer.datasets.synthetic.coco data/synthetic_det      # 256 train + 64 val images
#   mae-transfer train det/mask-rcnn_vit-tiny-p16_1xb4-lsj-600i_synthetic-128x128.py \
#       [--pretrained work_dirs/demo/pretrain/epoch_12.pth]
#
# The backbone starts from random weights unless --pretrained names a (tiny, 128 px) MAE checkpoint.
_base_ = ['./mask-rcnn_vit-base-p16_16xb4-amp-lsj-184ki_coco-1024x1024.py']

image_size = (128, 128)
channels = 64  # neck and head width (256 in the full recipe)
classes = ('ellipse', 'rectangle', 'triangle')  # mae_transfer.datasets.synthetic.coco.CLASSES

# ---- model -----------------------------------------------------------------------------------------------
model = dict(
    data_preprocessor=dict(pad_size_divisor=128),  # test images padded to 128 x 128 (see the full config)
    backbone=dict(
        arch='tiny',  # 192-d x 4 blocks x 3 heads
        img_size=128,  # the tiny MAE pretraining size, so the demo's checkpoint loads as is
        drop_path_rate=0.0,
        window_size=4,  # 8 x 8 tokens at 128 px: 2 x 2 windows
        global_attn_indexes=(1, 3),
        rel_pos_img_size=128,
        init_cfg=dict(type='Pretrained', checkpoint=None)),  # random (a child may set checkpoint)
    neck=dict(in_channels=192, out_channels=channels),
    rpn_head=dict(in_channels=channels, feat_channels=channels),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels),
        bbox_head=dict(in_channels=channels, conv_out_channels=channels, fc_out_channels=256,
                       num_classes=len(classes)),
        mask_roi_extractor=dict(out_channels=channels),
        mask_head=dict(in_channels=channels, conv_out_channels=channels, num_classes=len(classes))),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=32))),  # RoIs per image for the box head (512 in the recipe): its main cost
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=100)))

# ---- data: the synthetic shapes set, LSJ at 128 px ------------------------------------------------------
data_root = 'data/synthetic_det/'
metainfo = dict(classes=classes)
train_pipeline = [
    dict(type='mae_transfer.LoadImageSkipUnreadable'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.5, 1.5), keep_ratio=True),  # milder than 0.1-2.0
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=image_size, recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='Pad', size=image_size, pad_val=dict(img=(114, 114, 114))),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
batch_size = 4  # 600 steps of 4 images learn more than 300 of 8 at the same cost (box AP 0.23 vs 0.15)
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=1,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=8),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

# ---- optimisation: the recipe's AdamW + layer decay, plain fp32 (tools/train.py --amp: bf16 on CPU) --------
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='mae_transfer.LayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=4e-4, betas=(0.9, 0.999), weight_decay=0.1),  # 4x the recipe's: short run
    paramwise_cfg=dict(num_layers=4, decay_rate=0.7, weight_decay_rule='vitdet'))  # as the recipe
auto_scale_lr = dict(base_batch_size=batch_size)  # the lr above is for this batch already

max_iters = 600  # about 2 minutes on 2 idle cores; the whole 236-image train set about 10 times
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=25),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[int(max_iters * 163889 / 184375), int(max_iters * 177546 / 184375)],  # the recipe's 88 / 96 %
         gamma=0.1),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters, dynamic_intervals=None)  # validate once, at the end

default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
log_processor = dict(window_size=10)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
