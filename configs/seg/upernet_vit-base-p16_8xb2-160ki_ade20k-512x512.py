# UperNet on the MAE ViT-B/16 encoder, ADE20K 512x512: the MAE paper's recipe (He et al. 2021, table 5 and
# appendix A.4, BEiT's segmentation code): 48.1 mIoU single-scale. Checked against mmseg 1.2.2's
# configs/mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py (mmsegmentation==1.2.2): the same architecture
# (BEiT-style relative position bias per block, layer scale init 1.0, out_indices 3/5/7/11, Feature2Pyramid,
# UPerHead 768 + FCN auxiliary head), schedule and sliding-window test (512 crops, stride 256), with our backbone
# and layer-decay constructor. tests/models/test_beit_parity.py shows this backbone gives mmseg MAE's maps on the
# same weights, so an mmseg checkpoint of that config evaluates here: tools/test.py THIS_CONFIG mmseg_ckpt.pth.
# Remaining differences and their expected effect: docs/segmentation.md.
# Train on 8 GPUs x 2 images (batch 16) with mixed precision (fp16 + dynamic loss scaling on GPU):
#   mae-transfer dist-train seg/upernet_vit-base-p16_8xb2-160ki_ade20k-512x512.py 8 --amp
#   mae-transfer test seg/upernet_vit-base-p16_8xb2-160ki_ade20k-512x512.py work_dirs/.../iter_160000.pth
# Data: data/ade/ADEChallengeData2016/{images,annotations}/{training,validation} (mmseg's ADE20K layout).
_base_ = [
    'mmseg::_base_/models/upernet_mae.py', 'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_160k.py'
]
default_scope = 'mmseg'
custom_imports = dict(imports=['mae_transfer'], allow_failed_imports=False)

crop_size = (512, 512)
embed_dim = 768
num_layers = 12
num_classes = 150
# SyncBN (the recipe's, in the neck and heads): one BN over the 16 images of all GPUs. Without a process
# group (one process) PyTorch's SyncBatchNorm computes plain BN, so the model also builds and runs on a CPU.
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=crop_size),  # pads training crops (and their labels, with 255) to 512x512
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='mae_transfer.MAEViT',
        arch='base',
        # pos_embed is a 32 x 32 grid for 512-px crops: the official 14 x 14 (224 px) table is resized once,
        # when the checkpoint loads, and then fine-tuned at the resolution it is used at (as BEiT / mmseg do),
        # instead of being resized from 14 x 14 on every forward.
        img_size=crop_size[0],
        out_indices=(3, 5, 7, 11),  # 1/3, 1/2, 2/3 and all of the depth
        use_rel_pos_bias=True,  # BEiT-style bias table per block over the 32 x 32 grid + cls, zero-initialised
        layer_scale_init_value=1.0,  # learnable layer scale (mmseg's MAE config: init_values=1.0)
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/mae_pretrain_vit_base.pth')),
    # stride-16 maps -> strides 4, 8, 16, 32 (two deconvs / one deconv / identity / max-pool)
    neck=dict(type='Feature2Pyramid', embed_dim=embed_dim, rescales=[4, 2, 1, 0.5], norm_cfg=norm_cfg),
    decode_head=dict(in_channels=[embed_dim] * 4, channels=768, num_classes=num_classes, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=embed_dim, in_index=2, num_classes=num_classes, norm_cfg=norm_cfg),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(256, 256)))  # mmseg's MAE/BEiT config: half the crop

# Data: mmseg's ADE20K pipeline (reduce_zero_label, RandomResize to (2048, 512) x 0.5-2.0, RandomCrop 512 with
# cat_max_ratio 0.75, flip, PhotoMetricDistortion; test: Resize (2048, 512) and sliding window 512 / 256), written
# out to add one check: an unreadable label map, or one of another size than its image, is an error naming it.
train_pipeline = [
    dict(type='mae_transfer.LoadImageSkipUnreadable'),
    dict(type='mae_transfer.CheckLabelMap', num_classes=num_classes),  # sizes and label values
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='mae_transfer.CheckLabelMap', num_classes=num_classes),  # sizes and label values
    dict(type='LoadAnnotations', reduce_zero_label=True),  # after Resize: metrics use the original labels
    dict(type='PackSegInputs')
]
batch_size = 2  # per GPU: 8 GPUs x 2 = 16
train_dataloader = dict(batch_size=batch_size, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# Optimisation: AdamW 1e-4, wd 0.05 (none on norms, biases, pos/cls tokens), layer decay 0.65 over 12 blocks.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',  # tools/train.py --amp swaps in fp16 AmpOptimWrapper (GPU) or bf16 autocast (CPU)
    constructor='mae_transfer.LayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(num_layers=num_layers, decay_rate=0.65))
# The lr above is for batch 16, fixed as in the paper; --cfg-options auto_scale_lr.enable=True rescales it
# linearly to GPUs x batch_size on another setup.
auto_scale_lr = dict(enable=False, base_batch_size=16)
warmup_iters = 1500
max_iters = 160000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=warmup_iters, end=max_iters),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=16000)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=16000, max_keep_ckpts=3, save_last=True))
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])  # reports mIoU, mAcc and aAcc
test_evaluator = val_evaluator
randomness = dict(seed=0)
