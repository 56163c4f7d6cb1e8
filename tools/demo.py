#!/usr/bin/env python
"""The README's main job: the whole MAE journey on CPU with built-in data.

The logic and the options live in mae_transfer/tools/demo/ (also `mae-transfer demo`); `--help` lists them.
"""
from mae_transfer.tools.demo import main
from mae_transfer.utils.user_errors import run_command

if __name__ == '__main__':
    run_command(main, 'mae-transfer demo')
