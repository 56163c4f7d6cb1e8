# Tiny CPU twin of the MAE recipe, used by the demo and the tests: the same pipeline, optimiser and schedule
# shape at a size that trains in a few minutes on 2 cores. Data: images from
# mae_transfer.datasets.generate_images (`mae-transfer pretrain` writes them to data/synthetic_images if missing).
_base_ = ['./mae_vit-base-p16_8xb512-amp-coslr-800e_in1k-224x224.py']

img_size = 128  # 8 x 8 patches of 16: 16 stay visible at mask 0.75
model = dict(arch='tiny', img_size=img_size)

batch_size = 32
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=2,
    persistent_workers=True,
    pin_memory=False,
    dataset=dict(data_root='data/synthetic_images', crop_size=img_size))

epochs = 50
warmup_epochs = 5
optim_wrapper = dict(optimizer=dict(lr=1.5e-4 * batch_size / 256 * 10))  # 10x the paper's blr: short run
auto_scale_lr = dict(base_batch_size=batch_size)  # the lr above is for this batch already
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=epochs - warmup_epochs, eta_min=0.0, by_epoch=True,
         begin=warmup_epochs, end=epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=epochs)

default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=10, max_keep_ckpts=2))
custom_hooks = [dict(type='ReconstructionHook', interval=50, num_images=6)]
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
