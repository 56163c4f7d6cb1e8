# Mask R-CNN on an MAE-pretrained ViT-L/16, the ViTDet recipe: the ViT-B config with the ViT-L backbone, drop path
# 0.4, layer decay 0.8 over 24 blocks and global attention in blocks 5, 11, 17, 23.
# Reference result of this recipe: 55.5 box AP / 49.2 mask AP on COCO val2017.
# Checked against detectron2's projects/ViTDet/configs/COCO/mask_rcnn_vitdet_l_100ep.py at commit
# 02b5c4e295e990042a714712c21dc79b731e8833 (differences: docs/detection.md); detectron2's released ViT-L
# model_final_*.pkl evaluates whole in this config, heads included (parity figures: docs/detection.md).
#
#   mae-transfer dist-train det/mask-rcnn_vit-large-p16_16xb4-amp-lsj-184ki_coco-1024x1024.py 16
_base_ = ['./mask-rcnn_vit-base-p16_16xb4-amp-lsj-184ki_coco-1024x1024.py']

model = dict(
    backbone=dict(
        arch='large',
        drop_path_rate=0.4,
        global_attn_indexes=(5, 11, 17, 23),  # the last block of each quarter
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/mae_pretrain_vit_large.pth')),
    neck=dict(in_channels=1024))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=24, decay_rate=0.8))
