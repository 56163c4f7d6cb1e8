# The smallest Mask R-CNN on a mae_transfer backbone. It checks the scoped registry wiring: the config keeps
# mmdet's default scope and names our class with its prefix. configs/det/ holds the real ViTDet recipes.
_base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py']
default_scope = 'mmdet'
custom_imports = dict(imports=['mae_transfer'], allow_failed_imports=False)

channels = 32
num_classes = 3
model = dict(
    backbone=dict(_delete_=True, type='mae_transfer.PatchStem', channels=(channels, ) * 4),
    neck=dict(in_channels=[channels] * 4, out_channels=channels),
    rpn_head=dict(in_channels=channels, feat_channels=channels),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels),
        bbox_head=dict(in_channels=channels, fc_out_channels=64, num_classes=num_classes),
        mask_roi_extractor=dict(out_channels=channels),
        mask_head=dict(in_channels=channels, conv_out_channels=channels, num_classes=num_classes)))
