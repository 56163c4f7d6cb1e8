#!/usr/bin/env python
"""Export a trained model to ONNX and check it against PyTorch with onnxruntime.

The logic and the options live in mae_transfer/tools/export.py (also `mae-transfer export`); `--help` lists them.
"""
from mae_transfer.tools.export import main
from mae_transfer.utils.user_errors import run_command

if __name__ == '__main__':
    run_command(main, 'mae-transfer export')
