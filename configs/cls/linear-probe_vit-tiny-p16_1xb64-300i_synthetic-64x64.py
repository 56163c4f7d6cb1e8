# Tiny CPU twin of the linear-probe recipe: frozen tiny encoder (eval mode), cls token, BatchNorm1d without
# affine + linear head, LARS and warm-up + cosine, on the generated shape classes in data/synthetic_cls/.
# --pretrained work_dirs/demo/pretrain/epoch_12.pth probes the demo's tiny MAE; by default the encoder is
# random, which probes what random features already tell (colour).
_base_ = ['./linear-probe_vit-base-p16_8xb2048-lars-coslr-90e_in1k-224x224.py']

num_classes = 8
img_size = 128  # the tiny MAE pretraining size: pos_embed grid of its checkpoint
input_size = 64  # crops; pos_embed is resized to the 4 x 4 grid on the fly
model = dict(num_classes=num_classes,
             backbone=dict(arch='tiny', img_size=img_size,
                           init_cfg=dict(type='Pretrained', checkpoint=None)))  # random (a child may set checkpoint)

data_root = 'data/synthetic_cls'
train_transform = dict(input_size=input_size, scale=(0.35, 1.0))
val_transform = dict(input_size=input_size, crop_pct=224 / 256)
batch_size = 64
train_dataloader = dict(batch_size=batch_size, num_workers=2, pin_memory=False,
                        sampler=dict(type='InfiniteSampler', shuffle=True),  # iteration-based: no 2 s pause
                        # and worker restart at each epoch's end (mmengine's loop does both for a finite sampler)
                        dataset=dict(data_root=data_root + '/train', transform=train_transform))
val_dataloader = dict(batch_size=64, num_workers=1, pin_memory=False,
                      dataset=dict(data_root=data_root + '/val', transform=val_transform,
                                   classes=data_root + '/train'))
test_dataloader = val_dataloader

iters = 300
warmup_iters = 30
optim_wrapper = dict(optimizer=dict(lr=0.1 * batch_size / 256 * 100))  # 100x the paper's blr: 300 instead of 7000 steps
auto_scale_lr = dict(base_batch_size=batch_size)  # the lr above is for this batch already
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', T_max=iters - warmup_iters, eta_min=0.0, by_epoch=False, begin=warmup_iters,
         end=iters),
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=iters, val_interval=iters)

default_hooks = dict(logger=dict(interval=50),
                     checkpoint=dict(by_epoch=False, interval=iters, max_keep_ckpts=1, save_best=None))
log_processor = dict(by_epoch=False)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
