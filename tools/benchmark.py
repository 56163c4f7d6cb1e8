#!/usr/bin/env python
"""Benchmarks of every task: `python tools/benchmark.py TASK ...` with TASK pretrain, backbone, det, seg, pose, cls.

The logic and the options live in mae_transfer/tools/benchmark/ (also `mae-transfer benchmark`); `--help` lists them.
"""
from mae_transfer.tools.benchmark import main
from mae_transfer.utils.user_errors import run_command

if __name__ == '__main__':
    run_command(main, 'mae-transfer benchmark')
