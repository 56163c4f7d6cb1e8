"""`mae-transfer benchmark TASK ...` (or `mae-transfer benchmark TASK ...`): speed, memory and learning checks,
one module per task on one harness (mae_transfer/utils/benchmarking.py). Numbers are printed, never asserted.

    pretrain   MAE pretraining steps: img/s, encoder forward time per mask ratio, peak memory
    backbone   MAEViT forward + backward in the ViTDet / UperNet settings, with_cp off and on
    det        tiny Mask R-CNN twin: AP before / after training; full recipe: one step's time and memory
    seg        tiny UperNet twin: mIoU before / after training; full recipe: one step's time and memory
    pose       tiny heatmap twin: AP before / after training; full model: img/s, step time, memory
    cls        tiny fine-tune / linear probe / partial fine-tune twins: accuracy; full models: memory, step time
    export     ONNX of each tiny twin: differences from PyTorch, test metric and video fps with both backends

`mae-transfer benchmark TASK --help` shows a task's options and examples. Each measurement of a model's cost
runs in a fresh process (`python -m mae_transfer.tools.benchmark TASK ... --single`) so that its peak memory is
its own.
"""
import importlib
import os
import sys
from typing import List, Optional

TASKS = ('pretrain', 'backbone', 'det', 'seg', 'pose', 'cls', 'export')


def child_command(task: str) -> List[str]:
    """The start of a fresh child process's command line for a task (after the Python executable)."""
    return ['-m', __name__, task]


def main(argv: Optional[List[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ('-h', '--help', 'help'):
        print(f'usage: benchmark TASK [options]   (TASK: {", ".join(TASKS)})\n\n{__doc__}')
        return
    task, rest = argv[0], argv[1:]
    if task not in TASKS:
        raise SystemExit(f'unknown benchmark task {task!r}; one of: {", ".join(TASKS)}')
    if sys.argv:  # argparse names the program after sys.argv[0]: `benchmark.py det`, `mae-transfer benchmark det`
        sys.argv[0] = f'{os.path.basename(sys.argv[0])} {task}'
    importlib.import_module(f'{__name__}.{task}').main(rest)
