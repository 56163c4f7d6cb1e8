# ViTPose-B with the simple decoder: ReLU, x4 bilinear upsampling, 3x3 conv (reference: 75.5 AP on COCO val2017
# with detector boxes). Everything else as the classic-head config (ViTPose's backbone options included). Checked
# against the ViTPose repository's configs/body/2d_kpt_sview_rgb_img/topdown_heatmap/coco/
# ViTPose_base_simple_coco_256x192.py (ViTAE-Transformer/ViTPose, commit 33f49cf1f24077ec175cef0990bd25d2746c4898);
# a released ViTPose-B simple file (keypoint_head.final_layer.*) evaluates with this config directly.
_base_ = ['./heatmap_vit-base-p16_8xb64-210e_coco-256x192.py']

model = dict(head=dict(_delete_=True, type='SimpleHeatmapHead', out_channels=17, scale_factor=4.0, kernel_size=3))
