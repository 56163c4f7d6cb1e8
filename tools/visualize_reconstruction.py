#!/usr/bin/env python
"""Draw MAE reconstructions of your images with any checkpoint.

The logic and the options live in mae_transfer/tools/visualize.py (also `mae-transfer visualize`); `--help` lists them.
"""
from mae_transfer.tools.visualize import main
from mae_transfer.utils.user_errors import run_command

if __name__ == '__main__':
    run_command(main, 'mae-transfer visualize')
