#!/usr/bin/env python
"""Convert a ViT checkpoint (official MAE, ours, timm, mmpretrain, HuggingFace) to our canonical encoder file.

The logic and the options live in mae_transfer/tools/convert.py (also `mae-transfer convert`); `--help` lists them.
"""
from mae_transfer.tools.convert import main
from mae_transfer.utils.user_errors import run_command

if __name__ == '__main__':
    run_command(main, 'mae-transfer convert')
