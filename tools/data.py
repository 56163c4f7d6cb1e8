#!/usr/bin/env python
"""Write the synthetic sets the tiny configs read: python tools/data.py synthetic TASK [--out DIR].

The logic and the options live in mae_transfer/tools/data.py (also `mae-transfer data`); `--help` lists them.
"""
from mae_transfer.tools.data import main
from mae_transfer.utils.user_errors import run_command

if __name__ == '__main__':
    run_command(main, 'mae-transfer data')
