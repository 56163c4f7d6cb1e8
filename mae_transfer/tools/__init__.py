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


def use_own_visualizer(cfg: Config, label: str = 'run') -> None:
    """Give this run a visualizer of its own.

    mmdet / mmseg configs name their visualizer 'visualizer', and mmengine hands a later run in the same process
    (a notebook, the demo, a test) the first run's instance: its scalars and pictures would land in the first
    run's folder. A name unique in the process avoids that.
    """
    if cfg.get('visualizer'):
        cfg.visualizer.name = f'visualizer_{label}_{next(_RUNS)}'
