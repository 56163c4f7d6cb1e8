# The smallest UperNet on a tiny MAEViT with mmseg's Feature2Pyramid, under mmseg's default scope (see the
# Mask R-CNN twin). configs/seg/ holds the full recipes.
_base_ = ['mmseg::_base_/models/upernet_r50.py']
default_scope = 'mmseg'
custom_imports = dict(imports=['mae_transfer'], allow_failed_imports=False)

embed_dim = 192
channels = 32
num_classes = 4
norm_cfg = dict(type='BN', requires_grad=True)  # the base config's SyncBN needs a process group
model = dict(
    pretrained=None,
    data_preprocessor=dict(size=(64, 64)),
    backbone=dict(_delete_=True, type='mae_transfer.MAEViT', arch='tiny', img_size=64, out_indices=(0, 1, 2, 3),
                  drop_path_rate=0.1),
    neck=dict(type='Feature2Pyramid', embed_dim=embed_dim, rescales=[4, 2, 1, 0.5], norm_cfg=norm_cfg),
    decode_head=dict(in_channels=[embed_dim] * 4, channels=channels, num_classes=num_classes, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=embed_dim, in_index=2, channels=channels, num_classes=num_classes,
                        norm_cfg=norm_cfg))
