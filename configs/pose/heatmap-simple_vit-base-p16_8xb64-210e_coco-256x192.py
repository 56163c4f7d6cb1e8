# ViTPose-B with the simple decoder: x4 bilinear upsampling, ReLU, 3x3 conv (reference: 75.5 AP on COCO val2017
# with detector boxes). Everything else as the classic-head config.
_base_ = ['./heatmap_vit-base-p16_8xb64-210e_coco-256x192.py']

model = dict(head=dict(_delete_=True, type='SimpleHeatmapHead', out_channels=17, scale_factor=4.0, kernel_size=3))
