#!/usr/bin/env python
"""Export a trained model to ONNX and check it against PyTorch with onnxruntime.

The logic and the options live in mae_transfer/tools/export.py (also `mae-transfer export`); `--help` lists them.
"""
import sys

from mae_transfer.tools.export import main

if __name__ == '__main__':
    sys.exit(main())
