"""The logic of every command, one module per command, each with `main(argv=None)`.

`mae-transfer COMMAND` (mae_transfer/cli.py) and the thin scripts in the checkout's `tools/` folder both call
these, so an installed wheel runs the same commands as a source checkout:

    train      (tools/train.py)                    test       (tools/test.py)
    infer      (tools/infer.py)                    demo       (tools/demo.py)
    convert    (tools/convert_checkpoint.py)       download   (tools/download_checkpoint.py)
    visualize  (tools/visualize_reconstruction.py) benchmark  (tools/benchmark.py; one module per task)
    export     (tools/export.py)                   plan       (tools/plan.py)
    gpu-check  (tools/gpu_check.py)

`python -m mae_transfer.tools.COMMAND` runs one too (tools/dist_train.sh does, under torchrun).
"""
import itertools
import os.path as osp
import time

from mmengine.config import Config

from mae_transfer.utils.configs import ConfigNotFoundError, load_config


def load_config_or_exit(name: str) -> Config:
    """The config of a command's CONFIG argument (a file, or a shipped config relative to configs/); a missing one
    ends the command with one message that lists close matches."""
    try:
        return load_config(name)
    except ConfigNotFoundError as error:
        raise SystemExit(str(error)) from error


_RUNS = itertools.count()


def use_own_instances(cfg: Config, label: str = 'run') -> None:
    """Give this run a visualizer, a logger and a message hub of its own.

    mmengine hands a later run in the same process (a notebook, the demo, a test) the instances of an earlier
    one with the same name. mmdet / mmseg configs name their visualizer 'visualizer', so the later run's
    scalars and pictures would land in the first run's folder. The Runner names its logger and message hub
    `<config>_<timestamp>`, so two runs of one config started within the same second share them: the later
    run logs into the earlier run's log file, and its first logged losses are averaged with the earlier
    run's. Names unique in the process avoid both. The first run of a process keeps mmengine's experiment
    name.
    """
    run = next(_RUNS)
    if cfg.get('visualizer'):
        cfg.visualizer.name = f'visualizer_{label}_{run}'
    if run and not cfg.get('experiment_name'):
        stem = osp.splitext(osp.basename(cfg.filename or 'config'))[0]
        cfg.experiment_name = f'{stem}_{time.strftime("%Y%m%d_%H%M%S")}_{label}_{run}'
