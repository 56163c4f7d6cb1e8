# MAE ViT-B/16 end-to-end fine-tuning, the paper's recipe (83.6 top-1): blr 5e-4, layer decay 0.65, drop path
# 0.1, 100 epochs (5 warm-up), batch 1024, AdamW wd 0.05, mixup 0.8, cutmix 1.0, label smoothing 0.1,
# RandAugment m9-mstd0.5, random erasing 0.25, global pool + fc_norm.
# Checked against facebookresearch/mae at efb2a80 (2022-04-20): FINETUNE.md (ViT-B command), main_finetune.py,
# models_vit.py (vit_base_patch16, global_pool=True), util/lr_decay.py, util/lr_sched.py, util/datasets.py
# (timm 0.3.2 create_transform); remaining differences: docs/classification.md. The released
# mae_finetuned_vit_base.pth evaluates in it, head included: tools/test.py THIS_CONFIG mae_finetuned_vit_base.pth
# Train with: mae-transfer dist-train THIS_CONFIG 8
# MAE end-to-end fine-tuning on ImageNet-1k (He et al. 2021, official FINETUNE.md / main_finetune.py), ViT-B/16.
# Children set the architecture and the values that differ per size (lr, layer decay, drop path, epochs) or
# the protocol (partial fine-tuning); everything else is the paper's recipe.
_base_ = ['../_base_/default_runtime.py']  # scope, hooks, logging, seeding

# ---- model -----------------------------------------------------------------------------------------------
num_classes = 1000
img_size = 224
model = dict(
    type='ViTClassifier',
    protocol='finetune',  # global average pooling of the patch tokens + fc_norm + head (std 2e-5)
    num_classes=num_classes,
    backbone=dict(
        type='MAEViT', arch='base', img_size=img_size, drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/mae_pretrain_vit_base.pth')),
    # timm Mixup on the batch, soft targets with SoftTargetCrossEntropy; label smoothing 0.1 inside the targets
    mixup=dict(mixup_alpha=0.8, cutmix_alpha=1.0, prob=1.0, switch_prob=0.5, mode='batch', label_smoothing=0.1))

# ---- data ------------------------------------------------------------------------------------------------
data_root = 'data/imagenet'  # train/<class>/*.JPEG and val/<class>/*.JPEG
# timm create_transform: RandomResizedCrop (bicubic) + flip + RandAugment m9-mstd0.5 + random erasing 0.25
train_transform = dict(input_size=img_size, is_training=True, color_jitter=None, auto_augment='rand-m9-mstd0.5-inc1',
                       interpolation='bicubic', re_prob=0.25, re_mode='pixel', re_count=1)
# resize to 224 / 0.875 = 256 (bicubic), centre crop 224
val_transform = dict(input_size=img_size, is_training=False, interpolation='bicubic', crop_pct=224 / 256)
batch_size = 128  # per GPU; 8 GPUs -> the paper's 1024
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    drop_last=True,  # timm's Mixup pairs the images of a batch
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ClassFolderDataset', data_root=data_root + '/train', transform=train_transform))
val_dataloader = dict(
    batch_size=batch_size,
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    # class indices from the training folder, so that a validation folder lacking classes still matches
    dataset=dict(type='ClassFolderDataset', data_root=data_root + '/val', transform=val_transform,
                 classes=data_root + '/train'))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_evaluator = val_evaluator

# ---- optimisation ----------------------------------------------------------------------------------------
epochs = 100
warmup_epochs = 5
lr = 5e-4 * 1024 / 256  # blr 5e-4 x batch / 256
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='LayerDecayOptimWrapperConstructor',  # no weight decay on norms, biases, cls/pos tokens
    optimizer=dict(type='AdamW', lr=lr, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(num_layers=12, decay_rate=0.65))
# lr above is for an effective batch of 1024; tools/train.py rescales it to GPUs x batch x accumulation
auto_scale_lr = dict(enable=True, base_batch_size=1024)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    # cosine to min_lr 1e-6, scaled per layer like the lr (official: min_lr x lr_scale)
    dict(type='CosineAnnealingLR', T_max=epochs - warmup_epochs, eta_min_ratio=1e-6 / lr, by_epoch=True,
         begin=warmup_epochs, end=epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# ---- runtime ---------------------------------------------------------------------------------------------
default_hooks = dict(
    checkpoint=dict(max_keep_ckpts=2, save_last=True, save_best='accuracy/top1', rule='greater'))
