# Tiny CPU twin of the ViT-B UperNet recipe: the same model family, pipeline, optimiser and schedule shape at
# a size that trains in about 2 minutes on 2 CPU cores. Data: the procedural ADE20K-layout set of
# mae_transfer.datasets.synthetic.ade (label 0 = other, reduce_zero_label as on ADE20K), written with
#   python -m mae_transfer.datasets.synthetic.ade data/synthetic_seg
#   mae-transfer train seg/upernet_vit-tiny-p16_1xb8-200i_synthetic-128x128.py \
#       [--pretrained work_dirs/demo/pretrain/epoch_12.pth]    # tiny MAE from the demo (128 px), or random
_base_ = './upernet_vit-base-p16_8xb2-160ki_ade20k-512x512.py'

crop_size = (128, 128)
embed_dim = 192
num_layers = 4
num_classes = 5
norm_cfg = dict(type='BN', requires_grad=True)  # one process: no SyncBN
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch='tiny', img_size=crop_size[0], out_indices=(0, 1, 2, 3), drop_path_rate=0.1,
                  init_cfg=dict(type='Pretrained', checkpoint=None)),  # random (a child may set checkpoint)
    neck=dict(embed_dim=embed_dim, norm_cfg=norm_cfg),
    decode_head=dict(in_channels=[embed_dim] * 4, channels=64, num_classes=num_classes, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=embed_dim, channels=32, num_classes=num_classes, norm_cfg=norm_cfg),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(64, 64)))  # stride = half the crop, as ViT-B's

# The ADE20K pipeline scaled to the 96-192 px synthetic images: (2048, 512) -> (256, 128), crop 512 -> 128.
data_root = 'data/synthetic_seg'
metainfo = dict(  # = mae_transfer.datasets.synthetic.ade.METAINFO (a test checks it)
    classes=('stripes', 'mottle', 'ellipse', 'rectangle', 'triangle'),
    palette=[[120, 120, 120], [4, 200, 3], [220, 20, 60], [0, 102, 200], [255, 184, 6]])
train_pipeline = [
    dict(type='mae_transfer.LoadImageSkipUnreadable'),
    dict(type='mae_transfer.CheckLabelMap', num_classes=num_classes),  # sizes and label values
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(256, 128), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(256, 128), keep_ratio=True),
    dict(type='mae_transfer.CheckLabelMap', num_classes=num_classes),  # sizes and label values
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
# mmseg's generic BaseSegDataset with ADE20KDataset's conventions (ADE20KDataset itself only knows its 150
# class names); this is also the recipe for your own data in the ADE20K layout.
dataset = dict(_delete_=True, type='BaseSegDataset', data_root=data_root, metainfo=metainfo,
               img_suffix='.jpg', seg_map_suffix='.png', reduce_zero_label=True)
batch_size = 8
train_dataloader = dict(
    batch_size=batch_size, num_workers=2,
    dataset=dict(dataset, data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=1,
    dataset=dict(dataset, data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader

# A short run: 10x the recipe's lr (small model, random init), layer decay over 4 blocks, warmup then poly.
optim_wrapper = dict(optimizer=dict(lr=1e-4 * 10), paramwise_cfg=dict(num_layers=num_layers, decay_rate=0.65))
auto_scale_lr = dict(enable=False, base_batch_size=batch_size)
warmup_iters = 20
max_iters = 200
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=warmup_iters, end=max_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)  # one validation, at the end
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
