#!/usr/bin/env python
"""Convert a ViT checkpoint (official MAE, ours, timm, mmpretrain, HuggingFace) to our canonical encoder file.

The logic and the options live in mae_transfer/tools/convert.py (also `mae-transfer convert`); `--help` lists them.
"""
import sys

from mae_transfer.tools.convert import main

if __name__ == '__main__':
    sys.exit(main())
