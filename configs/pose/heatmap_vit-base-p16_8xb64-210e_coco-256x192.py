# ViTPose-B with the classic heatmap head on the MAE ViT-B/16 (Xu et al. 2022): top-down on person boxes, input
# 256x192, UDP heatmaps 64x48. Checked against the ViTPose repository's
# configs/body/2d_kpt_sview_rgb_img/topdown_heatmap/coco/ViTPose_base_coco_256x192.py (ViTAE-Transformer/ViTPose at
# commit 33f49cf1f24077ec175cef0990bd25d2746c4898) and its mmpose/models/backbones/vit.py, and mmpose 1.x's
# td-hm_ViTPose-base_8xb64-210e_coco-256x192.py. Remaining differences and their expected effect: docs/pose.md.
# Reference: 75.8 AP on COCO val2017 with the 56 AP person detector's boxes (flip test). A released ViTPose
# checkpoint (vitpose-b.pth: backbone.* + keypoint_head.*) evaluates with this config directly:
#   mae-transfer test pose/heatmap_vit-base-p16_8xb64-210e_coco-256x192.py vitpose-b.pth
# Data: data/coco/{train2017,val2017}/, data/coco/annotations/person_keypoints_{train,val}2017.json,
# data/coco/person_detection_results/COCO_val2017_detections_AP_H_56_person.json.
_base_ = ['../_base_/default_runtime.py']  # scope, hooks, logging, seeding

# ---- model -----------------------------------------------------------------------------------------------
input_size = (192, 256)  # (w, h)
codec = dict(type='UDPHeatmap', input_size=input_size, heatmap_size=(192 // 4, 256 // 4), sigma=2)
flip_test = True
model = dict(
    type='TopdownPoseEstimator',
    data_preprocessor=dict(type='ImgDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    backbone=dict(
        type='MAEViT',
        arch='base',
        img_size=(256, 192),  # pos_embed at the 16x12 input grid: resized once at load from the MAE 14x14 (bicubic)
        patch_padding=2,  # ViTPose's patch conv: kernel 16, stride 16, padding 2
        use_cls_token=False,  # ViTPose has no cls token in the sequence ...
        add_cls_pos_to_patches=True,  # ... but adds its position (pos_embed[:, :1]) to every patch token
        drop_path_rate=0.3,
        out_indices=(-1, ),
        final_norm=True,  # ViTPose's last_norm before the head
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/mae_pretrain_vit_base.pth')),
    head=dict(type='HeatmapHead', out_channels=17, deconv_out_channels=(256, 256), deconv_kernel_sizes=(4, 4),
              final_kernel_size=1),  # in_channels: the backbone's width
    codec=codec,
    loss=dict(use_target_weight=True),
    test_cfg=dict(flip_test=flip_test))

# ---- data ------------------------------------------------------------------------------------------------
data_root = 'data/coco/'
train_pipeline = [
    dict(type='mae_transfer.LoadImageSkipUnreadable'),
    dict(type='GetBBoxCenterScale', padding=1.25),
    dict(type='PoseRandomFlip', prob=0.5),
    dict(type='PoseHalfBody', prob=0.3, min_total_keypoints=9, upper_prioritized_prob=0.7),  # mmpose's rule
    dict(type='PoseRandomBBoxTransform', scale_factor=(0.5, 1.5), rotate_factor=80.0),
    dict(type='TopdownAffine', input_size=input_size, use_udp=True),
    dict(type='GenerateHeatmapTarget', encoder=codec),
    dict(type='PackPoseInputs'),
]
test_pipeline = [
    dict(type='mmcv.LoadImageFromFile'),
    dict(type='GetBBoxCenterScale', padding=1.25),
    dict(type='TopdownAffine', input_size=input_size, use_udp=True),
    dict(type='PackPoseInputs'),
]
batch_size = 64  # per GPU; 8 GPUs -> 512
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=4,
    persistent_workers=True,
    pin_memory=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='CocoKeypointsDataset',
        data_root=data_root,
        ann_file='annotations/person_keypoints_train2017.json',
        data_prefix=dict(img='train2017/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(
        type='CocoKeypointsDataset',
        data_root=data_root,
        ann_file='annotations/person_keypoints_val2017.json',
        # detector boxes (person AP 56); drop these two lines to test on ground-truth boxes
        bbox_file=data_root + 'person_detection_results/COCO_val2017_detections_AP_H_56_person.json',
        bbox_score_thr=0.0,
        data_prefix=dict(img='val2017/'),
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='CocoKeypointMetric', ann_file=data_root + 'annotations/person_keypoints_val2017.json',
                     score_mode='bbox_keypoint', keypoint_score_thr=0.2, nms_mode='oks_nms', nms_thr=0.9)
test_evaluator = val_evaluator

# ---- optimisation ----------------------------------------------------------------------------------------
epochs = 210
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='LayerDecayOptimWrapperConstructor',  # no weight decay on norms, biases, pos_embed
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.999), weight_decay=0.1),
    paramwise_cfg=dict(num_layers=12, decay_rate=0.75),
    clip_grad=dict(max_norm=1.0, norm_type=2))
auto_scale_lr = dict(enable=True, base_batch_size=512)  # lr 5e-4 is for 8 x 64; tools/train.py rescales
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', by_epoch=True, begin=0, end=epochs, milestones=[170, 200], gamma=0.1),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=epochs, val_interval=10)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# ---- runtime ---------------------------------------------------------------------------------------------
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(interval=10, save_best='coco/AP', rule='greater', max_keep_ckpts=1))
env_cfg = dict(cudnn_benchmark=False)
log_processor = dict(window_size=50)
