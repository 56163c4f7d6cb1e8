"""The demo's report: budgets, the MAE-vs-random table over seeds, the pretraining curves (loss and k-NN), the
label-efficiency picture, and per task its loss curves and pictures from both starts."""
import json
from pathlib import Path
from typing import Dict, List, Optional

from mae_transfer.utils.configs import CONFIG_ROOT
from mae_transfer.utils.report import (image_link, markdown_table, plot_curves, pyplot, read_scalars, save_figure,
                                       training_curve)

from .plan import INITS, LABEL_EFFICIENCY_TASK, TASKS
from .runs import FineTuneResult, PretrainResult
from .summary import Comparison, Spread, label_curve

COLOURS = {'mae': 'tab:blue', 'random': 'tab:orange'}


def duration(seconds: float) -> str:
    return f'{seconds:.0f} s' if seconds < 90 else f'{seconds / 60:.1f} min'


def plot_pretraining(loss: tuple, knn: List[tuple], out: Path) -> Optional[Path]:
    """Loss and k-NN top-1 against the iteration, side by side; None when nothing was logged."""
    if not loss[0] and not knn:
        return None
    fig, (left, right) = pyplot().subplots(1, 2, figsize=(9.5, 3.4), dpi=110)
    left.plot(*loss, linewidth=1.2)
    left.set(title='MAE loss (normalised pixels, masked patches)', xlabel='iteration', ylabel='loss')
    if knn:
        steps, top1 = zip(*knn)
        right.plot(steps, top1, marker='o', color='tab:green')
    right.set(title='k-NN top-1 of the encoder (k=20, T=0.07)', xlabel='iteration', ylabel='top-1 (%)')
    for ax in (left, right):
        ax.grid(alpha=0.3)
    return save_figure(fig, out)


def plot_label_efficiency(curve: Dict[str, Dict[int, Spread]], out: Path, title: str, ylabel: str,
                          unit: str) -> Optional[Path]:
    """Metric against labelled budget per start: mean line, min-max band over the seeds."""
    if not curve:
        return None
    fig, ax = pyplot().subplots(figsize=(5.5, 3.6), dpi=110)
    for init in INITS:
        points = curve.get(init, {})
        if not points:
            continue
        budgets = list(points)
        ax.plot(budgets, [points[b].mean for b in budgets], marker='o', color=COLOURS[init], label=f'from {init}')
        ax.fill_between(budgets, [points[b].low for b in budgets], [points[b].high for b in budgets],
                        color=COLOURS[init], alpha=0.2)
    from matplotlib.ticker import NullFormatter, ScalarFormatter
    ax.set_xscale('log')  # budgets grow by factors: equal steps on the axis
    ax.set_xticks(sorted({b for points in curve.values() for b in points}))
    ax.xaxis.set_major_formatter(ScalarFormatter())  # plain numbers at the budgets, nothing in between
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set(title=title, xlabel=f'labelled training images ({unit})', ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, out)


def summary_rows(comparisons: List[Comparison]) -> List[list]:
    return [[c.task, c.title, c.mae.text(c.digits), c.random.text(c.digits),
             f'{c.mae.mean - c.random.mean:+.{c.digits}f}', c.verdict] for c in comparisons]


SUMMARY_HEADER = ['task', 'metric', 'from MAE: mean (min-max)', 'from random: mean (min-max)', 'MAE - random',
                  'verdict']


def write_report(out_dir: Path, setting: Dict[str, object], pretrain: Optional[PretrainResult],
                 results: List[FineTuneResult], comparisons: List[Comparison], total_s: float) -> Path:
    report = out_dir / 'report.md'
    seeds = setting['seeds']
    lines = ['# mae_transfer demo report', '',
             f'A tiny MAE (ViT 192-d x 4 blocks, 128 px) pretrained on {setting["pool"]}, then fine-tuned per task '
             f'on a few labelled images from the MAE checkpoint and from random initialisation: same config, '
             f'schedule and seeds ({seeds}) for both starts, evaluated on each task\'s own test split. '
             f'Total time {duration(total_s)} on this machine. Tiny models on synthetic data: the numbers show '
             'the effect of pretraining in this setting, not the papers\' results (see the README for those).', '']

    lines += ['## Results (as measured)', '', markdown_table(SUMMARY_HEADER, summary_rows(comparisons)), '']
    missed = [c for c in comparisons if not c.wins]
    if missed:
        lines += ['Where the table does not show MAE beating every random seed: ' + '; '.join(
            f'{c.task} {c.title} ({c.verdict})' for c in missed) + '. It reports each as measured.', '']
    else:
        lines += [f'For every task, the MAE start\'s mean beats the random start\'s best of {seeds} seeds.', '']

    lines += ['## Budgets', '', markdown_table(
        ['task', 'labelled train images', 'test images', 'fine-tuning iterations', 'train time per run'],
        [[name, f'{TASKS[name].labels}{" per class" if TASKS[name].data_task == "cls" else ""}',
          f'{TASKS[name].test_images}{" per class" if TASKS[name].data_task == "cls" else ""}',
          runs[0].iters, duration(sum(r.train_s for r in runs) / len(runs))]
         for name, runs in _by_task(results).items()]), '']

    if pretrain is not None:
        lines += ['## MAE pretraining', '', f'{setting["pool_images"]} unlabeled images, {setting["epochs"]} epochs, '
                  f'{duration(pretrain.seconds)}.']
        pretrain_dir = pretrain.checkpoint.parent
        curves = plot_pretraining(training_curve(read_scalars(pretrain_dir)), pretrain.knn,
                                  out_dir / 'plots' / 'pretraining.png')
        if pretrain.knn:
            (first_step, first), (last_step, last) = pretrain.knn[0], pretrain.knn[-1]
            lines.append(f'k-NN top-1 of the encoder on the labelled classification set: {first:.1f} % at '
                         f'iteration {first_step} (random initialisation), {last:.1f} % at iteration {last_step}; '
                         f'the monitor cost {pretrain.knn_cost_s:.1f} s = '
                         f'{100 * pretrain.knn_cost_s / pretrain.seconds:.1f} % of the pretraining time.')
        if curves:
            lines += ['', image_link(curves, out_dir, 'pretraining loss and k-NN accuracy')]
        pictures = sorted((pretrain_dir / 'reconstructions').glob('iter_*.png'),
                          key=lambda p: int(p.stem.split('_')[1]))
        if pictures:
            lines += ['', 'Reconstructions (columns: masked input | reconstruction with the visible patches | '
                      f'original), first and last saved ({pictures[0].stem}, {pictures[-1].stem}):', '',
                      image_link(pictures[0], out_dir, 'first reconstruction', width=420),
                      image_link(pictures[-1], out_dir, 'last reconstruction', width=420)]
        lines.append('')

    task = TASKS[LABEL_EFFICIENCY_TASK]
    key, title = next(iter(task.metrics.items()))
    curve = label_curve(results, task.name, key)
    if sum(len(points) for points in curve.values()) > len(curve):  # more than one budget was run
        plot = plot_label_efficiency(curve, out_dir / 'plots' / 'label_efficiency.png',
                                     f'{task.name}: {title} against labels', title,
                                     'per class' if task.data_task == 'cls' else 'images')
        lines += ['## Label efficiency', '', f'{task.title}, at {len(next(iter(curve.values())))} labelled budgets '
                  f'(line: mean over the seeds, band: min-max).', '', image_link(plot, out_dir, 'label efficiency'),
                  '', markdown_table(['start', *[str(b) for b in next(iter(curve.values()))]],
                                     [[init, *[s.text(1) for s in points.values()]] for init, points in curve.items()]),
                  '']

    for name, runs in _by_task(results).items():
        task = TASKS[name]
        lines += [f'## {task.title}', '', f'Config: `{task.config.relative_to(CONFIG_ROOT.parent)}`', '']
        first_seed = {r.run.init: r for r in runs if r.run.seed == 0 and r.run.labels == task.labels}
        curve = plot_curves({f'from {init}': first_seed[init].curve for init in INITS if init in first_seed},
                            out_dir / 'plots' / f'{name}_loss.png', f'{name}: training loss (seed 0)', smooth=5)
        if curve:
            lines += [image_link(curve, out_dir, f'{name} loss'), '']
        if all(first_seed.get(init) and first_seed[init].pictures for init in INITS):
            lines += ['| from MAE | from random |', '|---|---|']
            for mae_picture, random_picture in zip(first_seed['mae'].pictures, first_seed['random'].pictures):
                lines.append(f'| {image_link(mae_picture, out_dir, "MAE", width=320)} '
                             f'| {image_link(random_picture, out_dir, "random", width=320)} |')
            lines.append('')
    report.write_text('\n'.join(lines) + '\n')
    write_metrics(out_dir / 'metrics.json', setting, results, comparisons)
    return report


def _by_task(results: List[FineTuneResult]) -> Dict[str, List[FineTuneResult]]:
    grouped: Dict[str, List[FineTuneResult]] = {}
    for result in results:
        grouped.setdefault(result.run.task, []).append(result)
    return grouped


def write_metrics(path: Path, setting: Dict[str, object], results: List[FineTuneResult],
                  comparisons: List[Comparison]) -> None:
    """Every run's metrics and the summary, for scripts: {'runs': [...], 'summary': [...], 'setting': {...}}."""
    path.write_text(json.dumps(dict(
        setting=setting,
        runs=[dict(task=r.run.task, init=r.run.init, seed=r.run.seed, labels=r.run.labels, iters=r.iters,
                   train_s=round(r.train_s, 1), metrics=r.metrics) for r in results],
        summary=[dict(task=c.task, metric=c.metric, labels=c.labels, mae=list(c.mae.values),
                      random=list(c.random.values), mae_mean=c.mae.mean, random_mean=c.random.mean,
                      random_best=c.random.high, verdict=c.verdict) for c in comparisons]), indent=2, default=str))
