#!/usr/bin/env python
"""Benchmarks of every task: `python tools/benchmark.py TASK ...` with TASK pretrain, backbone, det, seg, pose, cls.

The logic and the options live in mae_transfer/tools/benchmark/ (also `mae-transfer benchmark`); `--help` lists them.
"""
from mae_transfer.tools.benchmark import main

if __name__ == '__main__':
    main()
