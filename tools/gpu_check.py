#!/usr/bin/env python
"""Check the lent CUDA GPU machine: install the stack from a wheel folder, build mmcv's CUDA ops, run the full
ViT-B configs; `--cpu` runs the same path on a machine without a GPU; `--make-wheels DIR` makes the folder here.

The entry is mae_transfer/tools/gpu_check.py (`--help` lists the options; docs/gpu_check.md explains them). It
is loaded by its path because on a bare GPU machine `import mae_transfer` needs mmengine, which the entry
installs from the folder first; everything after that (mae_transfer.tools.gpu.*) is imported normally.
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
