# MAE ViT-L/16: the same recipe as ViT-B (official PRETRAIN.md), only the architecture changes.
# Checked against facebookresearch/mae at efb2a80 (2022-04-20): PRETRAIN.md (ViT-L command), models_mae.py
# (mae_vit_large_patch16_dec512d8b); differences left: docs/pretraining.md.
_base_ = ['./mae_vit-base-p16_8xb512-amp-coslr-800e_in1k-224x224.py']
model = dict(arch='large')
