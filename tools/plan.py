#!/usr/bin/env python
"""Plan per-device batch, gradient accumulation, with_cp and lr for your GPUs from measured step memory.

The logic and the options live in mae_transfer/tools/plan.py (also `mae-transfer plan`); `--help` lists them.
"""
from mae_transfer.tools.plan import main
from mae_transfer.utils.user_errors import run_command

if __name__ == '__main__':
    run_command(main, 'mae-transfer plan')
