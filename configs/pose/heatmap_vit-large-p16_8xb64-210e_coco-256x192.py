# ViTPose-L (classic head) on the MAE ViT-L/16: 24 blocks, drop path 0.5, layer decay 0.8 (reference 78.3 AP on
# COCO val2017 with detector boxes); ViTPose's backbone options as the ViT-B config. Checked against the ViTPose
# repository's configs/body/2d_kpt_sview_rgb_img/topdown_heatmap/coco/ViTPose_large_coco_256x192.py
# (ViTAE-Transformer/ViTPose, commit 98fb7f859f85004f9b7d447b34fff8d058127ab9, where layer decay counts the 24
# blocks; its earlier commit 33f49cf said num_layers=16, which raised the last blocks' lr above the head's) and
# mmpose 1.x's td-hm_ViTPose-large_8xb64-210e_coco-256x192.py; a released vitpose-l.pth evaluates with this config
# directly (mae-transfer test THIS_CONFIG vitpose-l.pth).
_base_ = ['./heatmap_vit-base-p16_8xb64-210e_coco-256x192.py']

model = dict(backbone=dict(arch='large', drop_path_rate=0.5,
                           init_cfg=dict(type='Pretrained', checkpoint='checkpoints/mae_pretrain_vit_large.pth')))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=24, decay_rate=0.8))
