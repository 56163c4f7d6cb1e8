#!/usr/bin/env python
"""Train from a config (MAE pretraining, detection, segmentation, pose, classification).

The logic and the options live in mae_transfer/tools/train.py (also `mae-transfer train`); `--help` lists them.
"""
from mae_transfer.tools.train import main
from mae_transfer.utils.user_errors import run_command

if __name__ == '__main__':
    run_command(main, 'mae-transfer train')
