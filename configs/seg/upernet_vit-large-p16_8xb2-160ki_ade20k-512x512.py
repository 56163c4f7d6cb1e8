# UperNet on the MAE ViT-L/16 encoder, ADE20K 512x512 (MAE paper, table 5: 53.6 mIoU). The ViT-B recipe with
# the usual large-model changes (BEiT-L's segmentation setup): blocks 7, 11, 15, 23 (1/3 .. all of 24),
# drop path 0.2, 1024-channel UPerHead. The paper searched the lr per backbone and does not list it; here the
# lr stays 1e-4 and the layer decay is 0.75, MAE's value for ViT-L fine-tuning (0.65 ** 25 would all but
# freeze the first blocks of a 24-block encoder). The backbone inherits the ViT-B options (BEiT-style relative
# position bias, layer scale 1.0) and the test stride 256. Reference: mmseg 1.2.2 ships no MAE ViT-L ADE20K
# config; this follows its configs/mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py at ViT-L width and depth.
#   mae-transfer dist-train seg/upernet_vit-large-p16_8xb2-160ki_ade20k-512x512.py 8 --amp
_base_ = './upernet_vit-base-p16_8xb2-160ki_ade20k-512x512.py'

embed_dim = 1024
num_layers = 24
model = dict(
    backbone=dict(arch='large', out_indices=(7, 11, 15, 23), drop_path_rate=0.2,
                  init_cfg=dict(type='Pretrained', checkpoint='checkpoints/mae_pretrain_vit_large.pth')),
    neck=dict(embed_dim=embed_dim),
    decode_head=dict(in_channels=[embed_dim] * 4, channels=1024),
    auxiliary_head=dict(in_channels=embed_dim))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=num_layers, decay_rate=0.75))
