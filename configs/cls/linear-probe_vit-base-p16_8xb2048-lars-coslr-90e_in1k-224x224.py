# MAE ViT-B/16 linear probe, the paper's recipe (68.0 top-1). Train with: mae-transfer dist-train THIS_CONFIG 8
# MAE linear probing on ImageNet-1k (official main_linprobe.py), ViT-B/16: frozen encoder in eval mode, the cls
# token after the encoder's norm, BatchNorm1d(affine=False, eps=1e-6) + linear head (std 0.01), LARS, blr 0.1
# at batch 16384, weight decay 0, 90 epochs with 10 warm-up (68.0 top-1). The BatchNorm's running statistics
# are updated in training and saved with the model.
# Checked against facebookresearch/mae at efb2a80 (2022-04-20): FINETUNE.md (linear probing), main_linprobe.py,
# util/lars.py, util/crop.py, models_vit.py (global_pool=False); remaining differences: docs/classification.md.
_base_ = ['../_base_/default_runtime.py']  # scope, hooks, logging, seeding

# ---- model -----------------------------------------------------------------------------------------------
num_classes = 1000
img_size = 224
model = dict(
    type='ViTClassifier',
    protocol='linear_probe',  # pool='cls' by default
    num_classes=num_classes,
    backbone=dict(type='MAEViT', arch='base', img_size=img_size,
                  init_cfg=dict(type='Pretrained', checkpoint='checkpoints/mae_pretrain_vit_base.pth')))

# ---- data ------------------------------------------------------------------------------------------------
data_root = 'data/imagenet'
# RandomResizedCrop(224, bicubic) + flip only, as the official linear probe
train_transform = dict(input_size=img_size, is_training=True, color_jitter=None, interpolation='bicubic',
                       scale=(0.08, 1.0), hflip=0.5, re_prob=0.0)
val_transform = dict(input_size=img_size, is_training=False, interpolation='bicubic', crop_pct=224 / 256)
batch_size = 2048  # per GPU; 8 GPUs -> the paper's 16384 (the frozen encoder keeps no activations)
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=16,
    persistent_workers=True,
    pin_memory=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ClassFolderDataset', data_root=data_root + '/train', transform=train_transform))
val_dataloader = dict(
    batch_size=256,
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='ClassFolderDataset', data_root=data_root + '/val', transform=val_transform,
                 classes=data_root + '/train'))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_evaluator = val_evaluator

# ---- optimisation ----------------------------------------------------------------------------------------
epochs = 90
warmup_epochs = 10
# LARS (official rule: trust ratio on matrices, plain momentum SGD on biases), only the head has gradients
optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='LARS', lr=0.1 * 16384 / 256, momentum=0.9, weight_decay=0.0))
auto_scale_lr = dict(enable=True, base_batch_size=16384)  # tools/train.py rescales to the real batch
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=epochs - warmup_epochs, eta_min=0.0, by_epoch=True, begin=warmup_epochs,
         end=epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# ---- runtime ---------------------------------------------------------------------------------------------
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(max_keep_ckpts=2, save_last=True, save_best='accuracy/top1', rule='greater'))
