# MAE ViT-B/16, the paper's recipe: 800 epochs, effective batch 4096 (8 GPUs x 512), mask 0.75, norm_pix.
# Train with: bash tools/dist_train.sh THIS_CONFIG 8 --amp
_base_ = ['../_base_/pretrain_mae.py']
