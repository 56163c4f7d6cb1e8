# MAE ViT-B/16 end-to-end fine-tuning, the paper's recipe (83.6 top-1): blr 5e-4, layer decay 0.65, drop path
# 0.1, 100 epochs (5 warm-up), batch 1024, AdamW wd 0.05, mixup 0.8, cutmix 1.0, label smoothing 0.1,
# RandAugment m9-mstd0.5, random erasing 0.25, global pool + fc_norm.
# Train with: bash tools/dist_train.sh THIS_CONFIG 8
_base_ = ['../_base_/cls_finetune.py']
