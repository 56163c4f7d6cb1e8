# The smallest UperNet on a mae_transfer backbone, under mmseg's default scope (see the Mask R-CNN twin).
_base_ = ['mmseg::_base_/models/upernet_r50.py']
default_scope = 'mmseg'
custom_imports = dict(imports=['mae_transfer'], allow_failed_imports=False)

channels = 32
num_classes = 4
norm_cfg = dict(type='BN', requires_grad=True)  # the base config's SyncBN needs a process group
model = dict(
    pretrained=None,
    data_preprocessor=dict(size=(64, 64)),
    backbone=dict(_delete_=True, type='mae_transfer.PatchStem', channels=(channels, ) * 4),
    decode_head=dict(in_channels=[channels] * 4, channels=channels, num_classes=num_classes, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=channels, in_index=2, channels=channels, num_classes=num_classes,
                        norm_cfg=norm_cfg))
