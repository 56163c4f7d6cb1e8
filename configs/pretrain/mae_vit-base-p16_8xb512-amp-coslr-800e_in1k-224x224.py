# MAE ViT-B/16, the paper's recipe: 800 epochs, effective batch 4096 (8 GPUs x 512), mask 0.75, norm_pix.
# Checked against facebookresearch/mae at efb2a80 (2022-04-20): PRETRAIN.md, main_pretrain.py, models_mae.py
# (mae_vit_base_patch16_dec512d8b), util/lr_sched.py; differences left: docs/pretraining.md.
# Train with: mae-transfer dist-train THIS_CONFIG 8 --amp
# MAE pretraining recipe (He et al. 2021; official repo's PRETRAIN.md), ViT-B/16 on ImageNet-1k train.
# Children set the architecture (and batch where it differs); everything else is the paper's recipe.
_base_ = ['../_base_/default_runtime.py']  # scope, hooks, logging, seeding

# ---- model -----------------------------------------------------------------------------------------------
model = dict(
    type='MAEPretrainer',
    arch='base',  # mae_vit_base_patch16: decoder 512-d x 8 blocks x 16 heads
    img_size=224,
    mask_ratio=0.75,
    norm_pix_loss=True,
    data_preprocessor=dict(
        type='ImgDataPreprocessor',  # uint8 crops -> float, ImageNet mean/std, batched
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375]))

# ---- data ------------------------------------------------------------------------------------------------
batch_size = 512  # per GPU; 8 GPUs -> the paper's 4096
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='UnlabeledImageFolder',
        data_root='data/imagenet/train',  # searched recursively; the class sub-folders are ignored
        crop_size=224,
        crop_scale=(0.2, 1.0),  # RandomResizedCrop, bicubic
        hflip_prob=0.5))

# ---- optimisation ----------------------------------------------------------------------------------------
epochs = 800
warmup_epochs = 40
optim_wrapper = dict(
    type='OptimWrapper',  # tools/train.py --amp swaps in mixed precision for the device
    # fused: one kernel for the whole update (faster; docs/performance.md)
    optimizer=dict(type='AdamW', lr=1.5e-4 * 4096 / 256, betas=(0.9, 0.95), weight_decay=0.05, fused=True),
    # As official main_pretrain.py: timm 0.3.2 `optim_factory.add_weight_decay(model, 0.05)` with no skip list
    # spares only 1-D params and biases (norms, biases); cls_token and mask_token ([1, 1, D]) ARE decayed.
    # pos_embed / decoder_pos_embed are fixed sin-cos tables (requires_grad=False), not optimised at all.
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, flat_decay_mult=0.0))
# lr above is for an effective batch of 4096 (blr 1.5e-4 x 4096 / 256); tools/train.py rescales it to the
# real effective batch = GPUs x batch_size x accumulative_counts, as the official code does.
auto_scale_lr = dict(enable=True, base_batch_size=4096)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=epochs - warmup_epochs, eta_min=0.0, by_epoch=True,
         begin=warmup_epochs, end=epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=epochs)

# ---- runtime ---------------------------------------------------------------------------------------------
default_hooks = dict(checkpoint=dict(interval=20, max_keep_ckpts=3, save_last=True))
custom_hooks = [
    dict(type='ReconstructionHook', interval=5000, num_images=6),
    # k-NN top-1 of the encoder's features on a small labelled set (docs/pretraining.md). Off here (no such
    # set ships with ImageNet); switch it on with a folder holding train/<class>/ (bank) and val/<class>/
    # (queries): --cfg-options custom_hooks.1.data_root=/path/to/labeled_folder  (1 = this entry's index)
    dict(type='KNNMonitorHook', data_root=None, interval=5000, k=20, temperature=0.07),
]
