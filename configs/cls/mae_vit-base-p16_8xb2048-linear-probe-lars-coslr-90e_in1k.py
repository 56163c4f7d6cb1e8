# MAE ViT-B/16 linear probe, the paper's recipe (68.0 top-1). Train with: bash tools/dist_train.sh THIS_CONFIG 8
_base_ = ['../_base_/cls_linear_probe.py']
