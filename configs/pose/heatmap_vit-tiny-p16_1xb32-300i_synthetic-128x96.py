# Tiny CPU twin of the ViTPose recipe for the demo and the tests: tiny MAE ViT (192-d x 4 blocks) at 128x96,
# classic head with 128 channels, UDP heatmaps 32x24, on the synthetic stick figures of
# mae_transfer.datasets.generate_pose_dataset (the demo writes them to data/synthetic_pose). Iteration-based,
# one validation at the end. The figures are colour-coded by side, so flips (training and test) are off.
_base_ = ['./heatmap_vit-base-p16_8xb64-210e_coco-256x192.py']

input_size = (96, 128)  # (w, h)
codec = dict(type='UDPHeatmap', input_size=input_size, heatmap_size=(96 // 4, 128 // 4), sigma=2)
model = dict(
    backbone=dict(arch='tiny', img_size=(128, 96), drop_path_rate=0.1,  # img_size: the input grid, 8x6
                  init_cfg=dict(type='Pretrained', checkpoint=None)),  # random (a child may set checkpoint)
    head=dict(deconv_out_channels=(128, 128)),
    codec=codec,
    test_cfg=dict(flip_test=False))

data_root = 'data/synthetic_pose/'
train_pipeline = [
    dict(type='mae_transfer.LoadImageSkipUnreadable'),
    dict(type='GetBBoxCenterScale', padding=1.25),
    dict(type='PoseHalfBody', prob=0.3, min_total_keypoints=9, upper_prioritized_prob=0.7),
    dict(type='PoseRandomBBoxTransform', scale_factor=(0.75, 1.25), rotate_factor=30.0),
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
batch_size = 32
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=1,
    pin_memory=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),  # iteration-based: no restart at each epoch's end
    dataset=dict(data_root=data_root, ann_file='annotations/person_keypoints_train.json',
                 data_prefix=dict(img='train/'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32,
    num_workers=1,
    dataset=dict(data_root=data_root, ann_file='annotations/person_keypoints_val.json', bbox_file=None,
                 data_prefix=dict(img='val/'), pipeline=test_pipeline))  # ground-truth boxes
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/person_keypoints_val.json')
test_evaluator = val_evaluator

iters = 300
optim_wrapper = dict(optimizer=dict(lr=2e-3, weight_decay=0.05), paramwise_cfg=dict(num_layers=4))
auto_scale_lr = dict(base_batch_size=batch_size)  # the lr above is for this batch already
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=30),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=iters,
         milestones=[iters * 170 // 210, iters * 200 // 210], gamma=0.1),  # the recipe's steps, in iterations
]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=iters, val_interval=iters)
default_hooks = dict(logger=dict(interval=25),
                     checkpoint=dict(by_epoch=False, interval=iters, save_best=None, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
