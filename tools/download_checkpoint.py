#!/usr/bin/env python
"""Download an official MAE checkpoint by name into checkpoints/ and convert it to our encoder format.

The logic and the options live in mae_transfer/tools/download.py (also `mae-transfer download`); `--help` lists them.
"""
from mae_transfer.tools.download import main
from mae_transfer.utils.user_errors import run_command

if __name__ == '__main__':
    run_command(main, 'mae-transfer download')
