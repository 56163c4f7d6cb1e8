#!/usr/bin/env python
"""Download an official MAE checkpoint by name into checkpoints/ and convert it to our encoder format.

The logic and the options live in mae_transfer/tools/download.py (also `mae-transfer download`); `--help` lists them.
"""
import sys

from mae_transfer.tools.download import main

if __name__ == '__main__':
    sys.exit(main())
