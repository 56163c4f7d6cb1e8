# MAE ViT-B/16 partial fine-tuning (paper, Figure 9): the patch embedding and the first `frozen_blocks` blocks
# stay frozen (and in eval mode); the last 12 - frozen_blocks blocks, fc_norm and the head train with the
# fine-tuning recipe. Fewer tuned blocks want longer schedules (the paper picks 50, 100 or 200 epochs).
# The official repository (facebookresearch/mae at efb2a80) has no partial fine-tuning script: checked against
# the paper (Fig. 9 and its appendix) and the fine-tuning recipe above; differences: docs/classification.md.
_base_ = ['./ft_vit-base-p16_8xb128-coslr-100e_in1k-224x224.py']

frozen_blocks = 8  # tune the last 4 of 12 blocks
model = dict(protocol='partial_finetune', frozen_blocks=frozen_blocks)
