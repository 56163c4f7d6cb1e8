"""The README's main job: what MAE is for, measured end to end on CPU with built-in data, in one command.

    mae-transfer demo                          # or `mae-transfer demo`; nothing to download (~12 min, 2 cores)
    mae-transfer demo --quick                  # one seed, shorter pretraining: about 4.5 minutes
    mae-transfer demo --seeds 3                # more seeds per start
    mae-transfer demo --images ~/my_photos     # pretrain on your own folder (searched recursively)
    mae-transfer demo --epochs 60 --scale 2    # longer pretraining, 2x longer fine-tuning
    mae-transfer demo --tasks seg probe        # only some of det, seg, pose, cls, probe
    mae-transfer demo --skip-pretrain          # reuse work_dirs/demo/pretrain's checkpoint

Stages:
1. generate an unlabeled pool (2048 images drawn from every task's scene generator) and pretrain a tiny MAE
   on it (ViT 192-d x 4 blocks, 128 px), with reconstruction pictures and a k-NN monitor of the encoder;
2. fine-tune each task on a few labelled images (Mask R-CNN, UperNet, heatmap pose, classification fine-tune
   and linear probe), from the MAE checkpoint and from random initialisation, with the same schedule and
   several seeds, and evaluate each on its own test split; the linear probe also at 3 labelled budgets;
3. write work_dirs/demo/report.md: the table (mean and min-max per start, the verdict), the pretraining loss
   and k-NN curves, the label-efficiency picture, loss curves and pictures per task (metrics.json beside it).
The console shows one line per stage with the time left; mmengine's full output goes to work_dirs/demo/demo.log.
Data goes to data/ and results to work_dirs/ under the current directory, so the demo runs the same from a
source checkout and from an installed wheel.
"""
import argparse
import os
import sys
import time
import warnings
from pathlib import Path
from typing import List, Optional

from mae_transfer.datasets.synthetic import ensure_synthetic
from mae_transfer.utils import collect_env

from .plan import (INITS, LABEL_EFFICIENCY_TASK, LABELLED_ROOT, POOL_ROOT, PRETRAIN_CONFIG, TASKS, DemoTask,
                   FineTuneRun, fine_tune_runs, stage_plan)
from .report import SUMMARY_HEADER, duration, summary_rows, write_report
from .runs import FineTuneResult, PretrainResult, fine_tune, pretrain
from .summary import compare

DEFAULTS = dict(num_images=2048, epochs=12, seeds=2, scale=1.0)  # 11.2-11.8 minutes on 2 idle cores
QUICK = dict(num_images=1024, epochs=10, seeds=1, scale=0.5)  # 4.5 minutes
PRETRAIN_S_PER_IMAGE_EPOCH = 0.0073  # tiny MAE at 128 px, batch 32, 2 idle cores (time-left estimate)
KNN_EVALUATIONS = 6  # k-NN monitor evaluations over the pretraining run (plus the one at initialisation)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true',
                        help=f'about 4.5 minutes: {QUICK["num_images"]} pool images, {QUICK["epochs"]} pretraining '
                             f'epochs, {QUICK["seeds"]} seed, half-length fine-tuning, no extra label budgets')
    parser.add_argument('--images', type=Path, default=None,
                        help='folder of your own images to pretrain on (default: generate the unlabeled pool)')
    parser.add_argument('--num-images', type=int, default=None,
                        help=f'unlabeled pool size to generate (default {DEFAULTS["num_images"]})')
    parser.add_argument('--epochs', type=int, default=None,
                        help=f'pretraining epochs, at least 2 (default {DEFAULTS["epochs"]}; warmup and cosine '
                             'stretched with them)')
    parser.add_argument('--seeds', type=int, default=None,
                        help=f'fine-tuning seeds per task and start (default {DEFAULTS["seeds"]})')
    parser.add_argument('--scale', type=float, default=None,
                        help='multiply every fine-tuning schedule (iterations, warmup, lr steps) by this '
                             f'(default {DEFAULTS["scale"]}, --quick {QUICK["scale"]})')
    parser.add_argument('--tasks', nargs='+', choices=list(TASKS), default=list(TASKS),
                        help='downstream tasks to run (cls: fine-tuning, probe: linear probe)')
    parser.add_argument('--skip-pretrain', action='store_true',
                        help='reuse the pretraining checkpoint of an earlier demo run in the work dir')
    parser.add_argument('--num-pictures', type=int, default=2, help='example pictures per task and start')
    parser.add_argument('--work-dir', type=Path, default=Path('work_dirs/demo'))
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.label_efficiency = not args.quick
    if args.epochs < 2:
        parser.error('--epochs must be at least 2 (a warmup, then the cosine schedule)')
    if args.scale <= 0 or args.seeds < 1 or args.num_images < 1:
        parser.error('--scale, --seeds and --num-images must be positive')
    return args


class Progress:
    """One line per stage with the time left, estimated from the stages' expected durations scaled by the pace
    so far; printed on the terminal while mmengine's output goes to the log."""

    def __init__(self, stages: List[tuple]):
        self.stages = stages
        self.index = -1
        self.start = time.time()
        self.done_expected = 0.0

    def next(self) -> None:
        if self.index >= 0:
            self.done_expected += self.stages[self.index][1]
        self.index += 1
        name, _ = self.stages[self.index]
        elapsed = time.time() - self.start
        remaining = sum(expected for _, expected in self.stages[self.index:])
        pace = elapsed / self.done_expected if self.done_expected else 1.0
        say(f'[demo {self.index + 1}/{len(self.stages)}] {name}  |  elapsed {duration(elapsed)}, '
            f'about {duration(pace * remaining)} left')


def say(line: str) -> None:
    print(line, flush=True)


def demo_log(line: str) -> None:
    say(f'[demo] {line}')


def prepare_labelled_sets(runs: List[FineTuneRun]) -> Path:
    """Write each labelled budget the runs need; return the k-NN monitor's set (the probe's classes)."""
    needed = {(TASKS[run.task].data_task, run.labels): TASKS[run.task] for run in runs}
    needed.setdefault(('cls', TASKS['probe'].labels), TASKS['probe'])  # the k-NN monitor's labelled set
    for (data_task, labels), task in sorted(needed.items()):
        ensure_synthetic(data_task, task.data_root(labels), log=demo_log, **task.generator_options(labels))
    return TASKS['probe'].data_root()


def pretrain_stage(args: argparse.Namespace, pool_images: int, knn_root: Path, log) -> PretrainResult:
    if args.images is not None:
        demo_log(f'pretraining on {pool_images} images under {args.images}')
        image_dir = args.images
    else:
        image_dir = ensure_synthetic('pool', POOL_ROOT, log=demo_log, num_images=args.num_images)
    result = pretrain(args.work_dir / 'pretrain', image_dir, pool_images, args.epochs, knn_root, KNN_EVALUATIONS,
                      log)
    knn = (f', k-NN top-1 {result.knn[0][1]:.1f} % -> {result.knn[-1][1]:.1f} % '
           f'(monitor {100 * result.knn_cost_s / result.seconds:.1f} % of the time)') if result.knn else ''
    say(f'    done in {duration(result.seconds)}{knn}')
    return result


def pool_size(args: argparse.Namespace) -> int:
    """Images the pretraining reads: the pool to generate, or the user's folder (searched once: it may be big)."""
    if args.images is None:
        return args.num_images
    from mae_transfer.datasets import find_images
    return len(find_images(args.images))


def previous_pretraining(work_dir: Path) -> PretrainResult:
    from mae_transfer.checkpoint import find_latest_checkpoint
    checkpoint = find_latest_checkpoint(str(work_dir / 'pretrain'))
    if checkpoint is None:
        sys.exit(f'no pretraining checkpoint in {work_dir / "pretrain"}: run the demo once without --skip-pretrain')
    return PretrainResult(Path(checkpoint), 0.0)


def result_line(task: DemoTask, result: FineTuneResult) -> str:
    shown = ', '.join(f'{title} {result.metrics.get(key, float("nan")):.3f}' for key, title in task.metrics.items())
    return f'    {shown} ({duration(result.train_s)} of training)'


PKG_RESOURCES_WARNING = 'ignore:pkg_resources is deprecated:UserWarning'  # mmengine / mmcv imports: noise


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    warnings.filterwarnings(*PKG_RESOURCES_WARNING.split(':')[:2], category=UserWarning)
    os.environ.setdefault('PYTHONWARNINGS', PKG_RESOURCES_WARNING)  # and in any Python process a run starts
    failures = collect_env.verify()
    if failures:
        sys.exit('\n'.join(failures))
    args.work_dir.mkdir(parents=True, exist_ok=True)
    log_path = args.work_dir / 'demo.log'
    runs = fine_tune_runs(args.tasks, args.seeds, args.label_efficiency)
    pool_images = pool_size(args)
    pretrain_s = None if args.skip_pretrain else PRETRAIN_S_PER_IMAGE_EPOCH * pool_images * args.epochs
    progress = Progress(stage_plan(runs, pretrain_s, args.scale))
    start = time.time()
    demo_log(f'{len(runs)} fine-tuning runs ({", ".join(args.tasks)}; {args.seeds} seed(s) per start); '
             f'full log: {log_path}')
    knn_root = prepare_labelled_sets(runs)

    with open(log_path, 'a') as log:
        if args.skip_pretrain:
            pretrained = previous_pretraining(args.work_dir)
        else:
            progress.next()
            pretrained = pretrain_stage(args, pool_images, knn_root, log)
        demo_log(f'MAE checkpoint: {pretrained.checkpoint}')
        results: List[FineTuneResult] = []
        for run in runs:
            progress.next()
            checkpoint = pretrained.checkpoint if run.init == 'mae' else None
            results.append(fine_tune(run, checkpoint, args.work_dir / run.name, args.scale, args.num_pictures, log))
            say(result_line(TASKS[run.task], results[-1]))

    comparisons = compare(results, args.tasks)
    setting = dict(pool=str(args.images) if args.images else 'the built-in unlabeled pool',
                   pool_images=pool_images, epochs=args.epochs, seeds=args.seeds, scale=args.scale,
                   label_efficiency=dict(task=LABEL_EFFICIENCY_TASK) if args.label_efficiency else None)
    report = write_report(args.work_dir, setting, None if args.skip_pretrain else pretrained, results, comparisons,
                          time.time() - start)
    say('')
    say(_table(comparisons))
    say(f'\n[demo] done in {duration(time.time() - start)}. Report: {report}')


def _table(comparisons) -> str:
    rows = [SUMMARY_HEADER] + summary_rows(comparisons)
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(SUMMARY_HEADER))]
    return '\n'.join('  '.join(str(cell).ljust(width) for cell, width in zip(row, widths)) for row in rows)


__all__ = ['INITS', 'LABELLED_ROOT', 'PRETRAIN_CONFIG', 'TASKS', 'main', 'parse_args']

if __name__ == '__main__':
    from mae_transfer.utils.user_errors import run_command
    run_command(main, 'mae-transfer demo')
