# MAE ViT-H/14: patch 14 (16 x 16 patches at 224), the same recipe otherwise.
_base_ = ['../_base_/pretrain_mae.py']
model = dict(arch='huge')
