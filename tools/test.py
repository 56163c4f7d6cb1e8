#!/usr/bin/env python
"""Evaluate a trained checkpoint with the config's test set and metrics.

The logic and the options live in mae_transfer/tools/test.py (also `mae-transfer test`); `--help` lists them.
"""
from mae_transfer.tools.test import main

if __name__ == '__main__':
    main()
