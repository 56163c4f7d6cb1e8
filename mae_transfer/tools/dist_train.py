"""Distributed training with torchrun, from a checkout or an installed wheel.

    mae-transfer dist-train det/mask-rcnn_vit-base-p16_16xb4-amp-lsj-184ki_coco-1024x1024.py 8
    mae-transfer dist-train CONFIG 2 --max-restarts 1 --work-dir work_dirs/run   # elastic: see below
    NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 PORT=29500 mae-transfer dist-train CONFIG 8   # on each node

Starts NUM_PROCESSES `mae-transfer train CONFIG --launcher pytorch [train options]` processes on this machine
(torchrun). On a CPU-only machine they use the gloo backend. `--max-restarts N`: when a process dies (killed, out
of memory), torchrun restarts all of them, up to N times, and they resume from the last complete checkpoint of
this run's work dir without --resume (docs/faults.md). `tools/dist_train.sh` is a wrapper of this command.
"""
import os
import subprocess
import sys
from typing import List, Optional, Sequence


def torchrun_command(module: str, head: Sequence[str], num_processes: int, max_restarts: int,
                     rest: Sequence[str]) -> List[str]:
    """The torchrun command line that runs `python -m module *head --launcher pytorch *rest` in each process."""
    address, port = os.environ.get('MASTER_ADDR', '127.0.0.1'), os.environ.get('PORT', '29500')
    if max_restarts > 0:
        # restarts need the c10d rendezvous with a fresh store per attempt: the default static one, or a store
        # shared with the rendezvous, keeps the previous attempt's addresses and the restarted processes connect
        # to the dead (TORCH_DISABLE_SHARE_RDZV_TCP_STORE is set by `launch`)
        rendezvous = ['--rdzv-backend=c10d', f'--rdzv-endpoint={address}:{port}']
    else:
        rendezvous = [f'--master_addr={address}', f'--master_port={port}']
    return [sys.executable, '-m', 'torch.distributed.run', f'--nnodes={os.environ.get("NNODES", "1")}',
            f'--node_rank={os.environ.get("NODE_RANK", "0")}', *rendezvous, f'--nproc_per_node={num_processes}',
            f'--max-restarts={max_restarts}', '-m', module, *head, '--launcher', 'pytorch', *rest]


def launch(module: str, head: Sequence[str], num_processes: str, rest: List[str]) -> int:
    """Run the command under torchrun; its exit status.

    Args:
        module: `mae_transfer.tools.train` or `.test`.
        head: its positional arguments (CONFIG [CHECKPOINT]).
        num_processes: NUM_PROCESSES as given.
        rest: the other options; `--max-restarts N` is taken out for torchrun.
    """
    if not num_processes.isdigit() or int(num_processes) < 1:
        raise SystemExit(f'NUM_PROCESSES must be a whole number >= 1, got {num_processes!r}')
    restarts = '0'
    if '--max-restarts' in rest:
        at = rest.index('--max-restarts')
        if at + 1 >= len(rest) or not rest[at + 1].isdigit():
            raise SystemExit('--max-restarts needs a whole number >= 0')
        restarts = rest[at + 1]
        del rest[at:at + 2]
    env = dict(os.environ)
    if int(restarts) > 0:
        env['TORCH_DISABLE_SHARE_RDZV_TCP_STORE'] = '1'
    command = torchrun_command(module, head, int(num_processes), int(restarts), rest)
    return subprocess.run(command, env=env).returncode


def launch_command(module: str, positional: int, argv: Optional[List[str]], usage: str) -> int:
    """`COMMAND POSITIONAL... NUM_PROCESSES [options]` -> `launch`; `usage` for --help or too few arguments."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ('-h', '--help') or len(args) <= positional:
        print(usage)
        return 0 if args and args[0] in ('-h', '--help') else 2
    return launch(module, args[:positional], args[positional], args[positional + 1:])


def main(argv: Optional[List[str]] = None) -> int:
    return launch_command('mae_transfer.tools.train', 1, argv, __doc__)


if __name__ == '__main__':
    from mae_transfer.utils.user_errors import run_command
    run_command(main, 'mae-transfer dist-train')
