# Tiny CPU twin of partial fine-tuning: the patch embedding and the first 2 of 4 blocks frozen (eval mode), the
# last 2 blocks, fc_norm and the head trained with the fine-tuning twin's recipe, data and schedule.
_base_ = ['./ft_vit-tiny-p16_1xb32-600i_synthetic-64x64.py']

frozen_blocks = 2
model = dict(protocol='partial_finetune', frozen_blocks=frozen_blocks)
