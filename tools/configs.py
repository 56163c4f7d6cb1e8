#!/usr/bin/env python
"""List the shipped configs: task, size, the data each expects.

The logic and the options live in mae_transfer/tools/configs.py (also `mae-transfer configs`); `--help` lists them.
"""
from mae_transfer.tools.configs import main
from mae_transfer.utils.user_errors import run_command

if __name__ == '__main__':
    run_command(main, 'mae-transfer configs')
