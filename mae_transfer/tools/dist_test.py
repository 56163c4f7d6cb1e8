"""Distributed evaluation with torchrun, from a checkout or an installed wheel.

    mae-transfer dist-test CONFIG CHECKPOINT 8 [test options]

Starts NUM_PROCESSES `mae-transfer test CONFIG CHECKPOINT --launcher pytorch [test options]` processes on this
machine (NNODES, NODE_RANK, MASTER_ADDR, PORT as for `mae-transfer dist-train`). `tools/dist_test.sh` wraps it.
"""
from typing import List, Optional

from mae_transfer.tools.dist_train import launch_command


def main(argv: Optional[List[str]] = None) -> int:
    return launch_command('mae_transfer.tools.test', 2, argv, __doc__)


if __name__ == '__main__':
    from mae_transfer.utils.user_errors import run_command
    run_command(main, 'mae-transfer dist-test')
