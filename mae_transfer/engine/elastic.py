"""Continue after torchrun's elastic agent restarts the worker group (`MAX_RESTARTS=N mae-transfer dist-train`).

With `--max-restarts N`, torchrun restarts every worker when one dies (SIGKILL, OOM, a lost node) and tells the new
workers so in `TORCHELASTIC_RESTART_COUNT`. The restarted workers run the same command line, which without help
would train from scratch. `resume_after_elastic_restart` makes them resume from the last complete checkpoint that
this job wrote to its work dir (checkpoint writes are atomic: a save cut short by the kill leaves the previous
checkpoint and `last_checkpoint` intact), so the run ends with the weights an uninterrupted run would have.

"This job" matters: the work dir may hold checkpoints of an earlier, finished run (the default work dir is
`work_dirs/<config name>`). A checkpoint counts only if it was written after the torchrun agent started; the agent
is the workers' parent process and its start time comes from /proc (Linux). Where /proc is missing, any
checkpoint counts. Port reuse needs nothing: the agent keeps its rendezvous store on MASTER_PORT across restarts
and the new workers connect to it.
"""
import os
import os.path as osp
from typing import Optional

from mmengine.config import Config
from mmengine.logging import print_log

from ..checkpoint.files import find_latest_checkpoint

RESTART_COUNT_VARIABLE = 'TORCHELASTIC_RESTART_COUNT'


def elastic_restart_count() -> int:
    """How many times torchrun has restarted this worker group (0: first attempt, or not under torchrun)."""
    return int(os.environ.get(RESTART_COUNT_VARIABLE) or 0)


def process_start_time(pid: int) -> Optional[float]:
    """Wall-clock time (seconds since the epoch) by which process `pid` had started, or None without /proc.

    /proc gives the boot time in whole seconds, truncated: adding 1 s makes this a time no earlier than the real
    start, so a checkpoint written just before the job began is never taken for one of the job's.
    """
    try:
        with open(f'/proc/{pid}/stat') as f:
            # The command name (field 2) may hold spaces: count fields after its closing ')'. Field 22 is
            # starttime, in clock ticks since boot; it is the 20th field after ')'.
            ticks = int(f.read().rsplit(')', 1)[1].split()[19])
        with open('/proc/stat') as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith('btime '))
        return boot + 1 + (ticks + 1) / os.sysconf('SC_CLK_TCK')  # ticks are truncated too
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def checkpoint_of_this_job(work_dir: str, job_start: Optional[float]) -> Optional[str]:
    """The work dir's last complete checkpoint if it was written after `job_start` (None: any age), else None."""
    checkpoint = find_latest_checkpoint(work_dir)
    if checkpoint is None or (job_start is not None and osp.getmtime(checkpoint) < job_start):
        return None
    return checkpoint


def resume_after_elastic_restart(cfg: Config, restart_count: Optional[int] = None,
                                 job_start: Optional[float] = None) -> Optional[str]:
    """After a restart, set `cfg.resume` / `cfg.load_from` to this job's last checkpoint; returns it (or None).

    `restart_count` defaults to `TORCHELASTIC_RESTART_COUNT`, `job_start` to the start of the torchrun agent.
    On the first attempt nothing changes. After a restart this job's checkpoint wins over `--resume CHECKPOINT`
    (that is where the first attempt started, not where it got to); without one, a `--resume` choice stands and
    a run without `--resume` starts over. One log line says which.
    """
    restart_count = elastic_restart_count() if restart_count is None else restart_count
    if restart_count == 0:
        return None
    if job_start is None:
        job_start = process_start_time(os.getppid())
    checkpoint = checkpoint_of_this_job(cfg.work_dir, job_start)
    if checkpoint is not None:
        cfg.resume, cfg.load_from = True, checkpoint  # a path, so every rank resumes from the same file
        print_log(f'elastic restart {restart_count}: resuming from {checkpoint}, the last complete checkpoint '
                  f'of this job', logger='current')
    elif cfg.get('resume'):
        print_log(f'elastic restart {restart_count}: this job wrote no checkpoint to {cfg.work_dir} yet; '
                  f'resuming as the first attempt did ({cfg.get("load_from") or "--resume"})', logger='current')
    else:
        print_log(f'elastic restart {restart_count}: this job wrote no checkpoint to {cfg.work_dir} yet; '
                  f'starting over', logger='current')
    return checkpoint
