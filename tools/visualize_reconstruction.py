#!/usr/bin/env python
"""Draw MAE reconstructions of your images with any checkpoint.

The logic and the options live in mae_transfer/tools/visualize.py (also `mae-transfer visualize`); `--help` lists them.
"""
from mae_transfer.tools.visualize import main

if __name__ == '__main__':
    main()
