# MAE ViT-H/14: patch 14 (16 x 16 patches at 224), the same recipe otherwise.
# Checked against facebookresearch/mae at efb2a80 (2022-04-20): PRETRAIN.md, models_mae.py
# (mae_vit_huge_patch14_dec512d8b); differences left: docs/pretraining.md.
_base_ = ['./mae_vit-base-p16_8xb512-amp-coslr-800e_in1k-224x224.py']
model = dict(arch='huge')
