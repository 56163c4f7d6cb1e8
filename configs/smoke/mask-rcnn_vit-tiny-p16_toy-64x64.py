# The smallest ViTDet-style Mask R-CNN: a tiny MAEViT with window attention + rel-pos and SimpleFPN. It checks
# the scoped registry wiring: the config keeps mmdet's default scope and names our classes with their prefix.
# configs/det/ holds the full recipes.
_base_ = ['mmdet::_base_/models/mask-rcnn_r50_fpn.py']
default_scope = 'mmdet'
custom_imports = dict(imports=['mae_transfer'], allow_failed_imports=False)

channels = 32
num_classes = 3
model = dict(
    backbone=dict(_delete_=True, type='mae_transfer.MAEViT', arch='tiny', img_size=64, window_size=3,
                  global_attn_indexes=(1, 3), use_rel_pos=True, drop_path_rate=0.1),
    neck=dict(_delete_=True, type='mae_transfer.SimpleFPN', in_channels=192, out_channels=channels, num_outs=5),
    rpn_head=dict(in_channels=channels, feat_channels=channels),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels),
        bbox_head=dict(in_channels=channels, fc_out_channels=64, num_classes=num_classes),
        mask_roi_extractor=dict(out_channels=channels),
        mask_head=dict(in_channels=channels, conv_out_channels=channels, num_classes=num_classes)))
