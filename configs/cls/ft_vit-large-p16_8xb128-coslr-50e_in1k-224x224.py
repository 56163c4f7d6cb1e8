# MAE ViT-L/16 end-to-end fine-tuning (85.9 top-1): blr 1e-3, layer decay 0.75, drop path 0.2, 50 epochs.
# Checked against facebookresearch/mae at efb2a80 (2022-04-20): FINETUNE.md (ViT-L command), models_vit.py (vit_large_patch16);
# remaining differences: docs/classification.md. Evaluates the released mae_finetuned_vit_large.pth as is.
_base_ = ['./ft_vit-base-p16_8xb128-coslr-100e_in1k-224x224.py']

model = dict(backbone=dict(arch='large', drop_path_rate=0.2,
                           init_cfg=dict(checkpoint='checkpoints/mae_pretrain_vit_large.pth')))
epochs = 50
warmup_epochs = 5
lr = 1e-3 * 1024 / 256  # blr 1e-3 x batch / 256
optim_wrapper = dict(optimizer=dict(lr=lr), paramwise_cfg=dict(num_layers=24, decay_rate=0.75))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=epochs - warmup_epochs, eta_min_ratio=1e-6 / lr, by_epoch=True,
         begin=warmup_epochs, end=epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=epochs)
