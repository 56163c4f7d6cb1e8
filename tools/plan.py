#!/usr/bin/env python
"""Plan per-device batch, gradient accumulation, with_cp and lr for your GPUs from measured step memory.

The logic and the options live in mae_transfer/tools/plan.py (also `mae-transfer plan`); `--help` lists them.
"""
from mae_transfer.tools.plan import main

if __name__ == '__main__':
    main()
