#!/usr/bin/env python
"""Evaluate a trained checkpoint with the config's test set and metrics.

The logic and the options live in mae_transfer/tools/test.py (also `mae-transfer test`); `--help` lists them.
"""
from mae_transfer.tools.test import main
from mae_transfer.utils.user_errors import run_command

if __name__ == '__main__':
    run_command(main, 'mae-transfer test')
