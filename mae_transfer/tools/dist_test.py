"""Distributed evaluation with torchrun, from a checkout or an installed wheel.

    mae-transfer dist-test CONFIG CHECKPOINT 8 [test options]

Starts NUM_PROCESSES `mae-transfer test CONFIG CHECKPOINT --launcher pytorch [test options]` processes on this
machine (NNODES, NODE_RANK, MASTER_ADDR, PORT as for `mae-transfer dist-train`). `tools/dist_test.sh` wraps it.
"""
import sys
from typing import List, Optional

from mae_transfer.tools.dist_train import launch


def main(argv: Optional[List[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ('-h', '--help') or len(args) < 3:
        print(__doc__)
        return 0 if args and args[0] in ('-h', '--help') else 2
    return launch('mae_transfer.tools.test', args[:2], args[2], args[3:])


if __name__ == '__main__':
    from mae_transfer.utils.user_errors import run_command
    run_command(main, 'mae-transfer dist-test')
