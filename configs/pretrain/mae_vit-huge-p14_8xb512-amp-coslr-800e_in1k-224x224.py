# MAE ViT-H/14: patch 14 (16 x 16 patches at 224), the same recipe otherwise.
_base_ = ['./mae_vit-base-p16_8xb512-amp-coslr-800e_in1k-224x224.py']
model = dict(arch='huge')
