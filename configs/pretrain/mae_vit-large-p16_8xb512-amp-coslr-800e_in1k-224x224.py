# MAE ViT-L/16: the same recipe as ViT-B (official PRETRAIN.md), only the architecture changes.
_base_ = ['./mae_vit-base-p16_8xb512-amp-coslr-800e_in1k-224x224.py']
model = dict(arch='large')
