#!/usr/bin/env python
"""Run a trained model on image files and write pictures of its predictions.

The logic and the options live in mae_transfer/tools/infer.py (also `mae-transfer infer`); `--help` lists them.
"""
from mae_transfer.tools.infer import main
from mae_transfer.utils.user_errors import run_command

if __name__ == '__main__':
    run_command(main, 'mae-transfer infer')
