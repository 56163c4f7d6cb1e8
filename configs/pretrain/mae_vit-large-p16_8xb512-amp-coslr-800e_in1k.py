# MAE ViT-L/16: the same recipe as ViT-B (official PRETRAIN.md), only the architecture changes.
_base_ = ['../_base_/pretrain_mae.py']
model = dict(arch='large')
