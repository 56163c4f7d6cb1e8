#!/usr/bin/env python
"""Check a CUDA GPU machine: install the stack from a wheel folder, build mmcv's CUDA ops, run the full ViT-B
configs; or, with --make-wheels DIR, make that folder here.

The logic and the options live in mae_transfer/tools/gpu_check.py (`--help` lists them); docs/gpu_check.md
explains them. That file is loaded by its path rather than imported as `mae_transfer.tools.gpu_check`: importing
the package needs mmengine, which the GPU machine only has once the check has installed it.
"""
import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parents[1] / 'mae_transfer' / 'tools' / 'gpu_check.py'
_SPEC = importlib.util.spec_from_file_location('mae_transfer_gpu_check', _PATH)
_MODULE = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_MODULE)
main = _MODULE.main

if __name__ == '__main__':
    sys.exit(main())
