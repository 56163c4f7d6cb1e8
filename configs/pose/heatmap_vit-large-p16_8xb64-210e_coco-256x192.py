# ViTPose-L (classic head) on the MAE ViT-L/16: 24 blocks, drop path 0.5, layer decay 0.8 (mmpose's
# td-hm_ViTPose-large_8xb64-210e_coco-256x192; reference 78.3 AP on COCO val2017 with detector boxes).
_base_ = ['./heatmap_vit-base-p16_8xb64-210e_coco-256x192.py']

model = dict(backbone=dict(arch='large', drop_path_rate=0.5,
                           init_cfg=dict(type='Pretrained', checkpoint='checkpoints/mae_pretrain_vit_large.pth')))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=24, decay_rate=0.8))
