"""The README's main job: the whole MAE journey on CPU with built-in data, in one command.

    python tools/demo.py                          # or `mae-transfer demo`; nothing to download
    python tools/demo.py --images ~/my_photos     # pretrain on your own folder (searched recursively)
    python tools/demo.py --epochs 200 --scale 3   # longer pretraining, 3x longer fine-tuning
    python tools/demo.py --tasks seg              # only some of det, seg, pose
    python tools/demo.py --skip-pretrain          # reuse work_dirs/demo/pretrain's checkpoint

Stages:
1. pretrain a tiny MAE (ViT 192-d x 4 blocks, 128 px) on procedural images, saving reconstruction pictures;
2. fine-tune the tiny Mask R-CNN (synthetic COCO-format shapes), UperNet (synthetic ADE20K-layout scenes) and
   heatmap pose (synthetic 17-joint figures) configs twice each: from the MAE checkpoint and from random
   initialisation, and evaluate them with their task metrics;
3. write work_dirs/demo/report.md: metrics side by side, loss curves, and example pictures of
   reconstructions, detections, masks, segmentation overlays and skeletons.
Every number in the report is what this run measured. Data goes to data/ and results to work_dirs/ under the
current directory, so the demo runs the same from a source checkout and from an installed wheel.
"""
import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from mmengine.config import Config
from mmengine.runner import Runner

import mae_transfer  # noqa: F401
from mae_transfer.checkpoint import find_latest_checkpoint
from mae_transfer.apis import task_module
from mae_transfer.datasets.synthetic import SYNTHETIC_SETS, ensure_synthetic
from mae_transfer.engine import add_run_safety
from mae_transfer.tools import use_own_visualizer
from mae_transfer.utils import collect_env
from mae_transfer.utils.configs import CONFIG_ROOT, set_pretrained
from mae_transfer.utils.report import (image_link, markdown_table, numeric_metrics, plot_curves, read_scalars,
                                       training_curve)
from mae_transfer.utils.schedule import scale_schedule, set_schedule_length

PRETRAIN_CONFIG = CONFIG_ROOT / 'pretrain' / 'mae_vit-tiny-p16_1xb32-coslr-50e_synthetic-128x128.py'
BUILT_IN_IMAGES = Path(SYNTHETIC_SETS['pretrain'].default_root)
INITS = ('mae', 'random')  # fine-tune from the MAE checkpoint, and from random initialisation


@dataclass
class DemoTask:
    """One downstream task of the demo: its tiny config, its generated data and what to report."""
    name: str
    title: str
    config: Path
    data_root: Path
    metrics: Dict[str, str]  # metric key in the evaluator's output -> column title
    picture_glob: str  # validation images to draw predictions on (relative to data_root)
    infer_options: Dict[str, str] = field(default_factory=dict)  # relative paths resolved under data_root
    expected_s: float = 120.0  # the config's whole schedule + evaluation on 2 idle cores (time-left estimate)
    schedule: float = 1.0  # fraction of the config's schedule the demo trains (x --scale), to fit ~15 minutes


TASKS = {
    'det': DemoTask('det', 'Instance segmentation: Mask R-CNN (ViTDet), synthetic COCO-format shapes',
                    CONFIG_ROOT / 'det' / 'mask-rcnn_vit-tiny-p16_1xb4-lsj-600i_synthetic-128x128.py',
                    Path(SYNTHETIC_SETS['det'].default_root),
                    {'coco/bbox_mAP': 'box AP', 'coco/segm_mAP': 'mask AP'}, 'val/*.jpg',
                    expected_s=220.0, schedule=2 / 3),  # 400 of the config's 600 iterations
    'seg': DemoTask('seg', 'Semantic segmentation: UperNet, synthetic ADE20K-layout scenes',
                    CONFIG_ROOT / 'seg' / 'upernet_vit-tiny-p16_1xb8-200i_synthetic-128x128.py',
                    Path(SYNTHETIC_SETS['seg'].default_root),
                    {'mIoU': 'mIoU', 'mAcc': 'mAcc', 'aAcc': 'aAcc'}, 'images/validation/*.jpg', expected_s=60.0),
    'pose': DemoTask('pose', 'Human pose: top-down heatmaps (ViTPose), synthetic 17-joint figures',
                     CONFIG_ROOT / 'pose' / 'heatmap_vit-tiny-p16_1xb32-300i_synthetic-128x96.py',
                     Path(SYNTHETIC_SETS['pose'].default_root),
                     {'coco/AP': 'AP', 'coco/AP .5': 'AP50', 'coco/AR': 'AR'}, 'val/*.png',
                     {'boxes': 'person_detection_results_val.json'}, expected_s=150.0),
}
PRETRAIN_EXPECTED_S = 150.0  # 50 epochs on 512 images, 2 idle cores


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--images', type=Path, default=None,
                        help='folder of your own images to pretrain on (default: generate procedural ones)')
    parser.add_argument('--num-images', type=int, default=512, help='how many images to generate')
    parser.add_argument('--epochs', type=int, default=None,
                        help='pretraining epochs, at least 2 (tiny config: 50; warmup and cosine stretched with them)')
    parser.add_argument('--scale', type=float, default=1.0,
                        help='multiply every fine-tuning schedule (iterations, warmup, lr steps) by this')
    parser.add_argument('--tasks', nargs='+', choices=sorted(TASKS), default=list(TASKS),
                        help='downstream tasks to run')
    parser.add_argument('--skip-pretrain', action='store_true',
                        help="reuse the pretraining checkpoint of an earlier demo run in the work dir")
    parser.add_argument('--num-pictures', type=int, default=2, help='example pictures per task and init')
    parser.add_argument('--work-dir', type=Path, default=Path('work_dirs/demo'))
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs < 2:
        parser.error('--epochs must be at least 2 (one warmup epoch, then the cosine schedule)')
    if args.scale <= 0:
        parser.error('--scale must be positive')
    return args


def duration(seconds: float) -> str:
    return f'{seconds:.0f} s' if seconds < 90 else f'{seconds / 60:.1f} min'


class Progress:
    """Stage banners with the time left, estimated from the expected stage durations scaled by the pace so far."""

    def __init__(self, stages: List[Tuple[str, float]]):
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
        print(f'\n[demo {self.index + 1}/{len(self.stages)}] {name}  |  elapsed {duration(elapsed)}, '
              f'about {duration(pace * remaining)} left', flush=True)


def pretrain_expected_s(args: argparse.Namespace) -> float:
    """The pretraining stage's expected duration, for the time-left estimate: proportional to epochs x images."""
    from mae_transfer.datasets import find_images
    epochs = args.epochs or Config.fromfile(str(PRETRAIN_CONFIG)).train_cfg.max_epochs
    images = args.num_images if args.images is None else len(find_images(args.images))
    return PRETRAIN_EXPECTED_S * epochs / 50 * images / 512


def prepare_images(args: argparse.Namespace) -> Path:
    from mae_transfer.datasets import find_images
    if args.images is not None:
        print(f'[demo] pretraining on {len(find_images(args.images))} images under {args.images}')
        return args.images
    return ensure_synthetic('pretrain', BUILT_IN_IMAGES, log=demo_log, num_images=args.num_images, seed=0)


def demo_log(line: str) -> None:
    print(f'[demo] {line}')


def pretrain(args: argparse.Namespace, image_dir: Path) -> Path:
    cfg = Config.fromfile(str(PRETRAIN_CONFIG))
    cfg.work_dir = str(args.work_dir / 'pretrain')
    cfg.train_dataloader.dataset.data_root = str(image_dir)
    if args.epochs:
        set_schedule_length(cfg, epochs=args.epochs)  # warmup and cosine stretched with it
    add_run_safety(cfg)
    Runner.from_cfg(cfg).train()
    return pretrained_checkpoint(args.work_dir)


def pretrained_checkpoint(work_dir: Path) -> Path:
    checkpoint = find_latest_checkpoint(str(work_dir / 'pretrain'))
    if checkpoint is None:
        sys.exit(f'no pretraining checkpoint in {work_dir / "pretrain"}: run the demo once without --skip-pretrain')
    return Path(checkpoint)


def fine_tune(task: DemoTask, init: str, checkpoint: Optional[Path], args: argparse.Namespace) -> dict:
    """Train the task's tiny config from `checkpoint` (None: random init), evaluate it, draw pictures."""
    cfg = Config.fromfile(str(task.config))
    work_dir = args.work_dir / task.name / init
    cfg.work_dir = str(work_dir)
    set_pretrained(cfg, None if checkpoint is None else str(checkpoint))
    use_own_visualizer(cfg, f'{task.name}_{init}')
    scale_schedule(cfg, args.scale * task.schedule)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None  # evaluated once, by runner.test() below
    add_run_safety(cfg)
    start = time.time()
    runner = Runner.from_cfg(cfg)
    runner.train()
    train_s = time.time() - start
    metrics = numeric_metrics(runner.test())
    trained = Path(find_latest_checkpoint(str(work_dir)))

    images = sorted(task.data_root.glob(task.picture_glob))[:args.num_pictures]
    options = {key: str(task.data_root / value) for key, value in task.infer_options.items()}
    pictures = task_module(cfg).infer_images(cfg, str(trained), [str(p) for p in images], str(work_dir / 'pictures'),
                                             **options)
    return dict(metrics=metrics, train_s=train_s, iters=cfg.train_cfg.max_iters, work_dir=work_dir,
                pictures=[Path(p) for p in pictures], curve=training_curve(read_scalars(work_dir)))


def write_report(args: argparse.Namespace, results: Dict[str, Dict[str, dict]], pretrain_s: Optional[float],
                 total_s: float) -> Path:
    out_dir = args.work_dir
    report = out_dir / 'report.md'
    lines = ['# mae_transfer demo report', '',
             f'Tiny MAE (ViT 192-d x 4 blocks, 128 px) pretrained on '
             f'{args.images or "procedural images"}, then fine-tuned per task from the MAE checkpoint and from '
             f'random initialisation with the same schedule. Total time {duration(total_s)} on this machine. '
             'Tiny models and short schedules on synthetic data: the numbers show the pipeline working and the '
             'effect of pretraining at this scale, not the papers\' results (see README for those).', '']

    lines += ['## Results (as measured)', '']
    rows = []
    for name, runs in results.items():
        task = TASKS[name]
        for key, title in task.metrics.items():
            mae_value, random_value = (runs[init]['metrics'].get(key, float('nan')) for init in INITS)
            rows.append([name, title, mae_value, random_value, mae_value - random_value])
    lines += [markdown_table(['task', 'metric', 'from MAE', 'from random', 'MAE - random'], rows), '']
    timing = [[name, runs['mae']['iters'], *(f'{runs[init]["train_s"]:.0f} s' for init in INITS)]
              for name, runs in results.items()]
    lines += [markdown_table(['task', 'iterations', 'train time (MAE)', 'train time (random)'], timing), '']

    lines += ['## MAE pretraining', '']
    pretrain_dir = args.work_dir / 'pretrain'
    curve = plot_curves({'pretraining': training_curve(read_scalars(pretrain_dir))},
                        out_dir / 'plots' / 'pretrain_loss.png', 'MAE pretraining loss (normalised pixels)')
    if pretrain_s is not None:
        lines.append(f'Pretraining took {duration(pretrain_s)}.')
    if curve:
        lines += ['', image_link(curve, out_dir, 'pretraining loss')]
    pictures = sorted((pretrain_dir / 'reconstructions').glob('iter_*.png'), key=lambda p: int(p.stem.split('_')[1]))
    if pictures:
        lines += ['', 'Reconstructions (columns: masked input | reconstruction with the visible patches | original), '
                  f'first and last saved ({pictures[0].stem}, {pictures[-1].stem}):', '',
                  image_link(pictures[0], out_dir, 'first reconstruction', width=420),
                  image_link(pictures[-1], out_dir, 'last reconstruction', width=420)]

    for name, runs in results.items():
        task = TASKS[name]
        lines += ['', f'## {task.title}', '', f'Config: `{task.config.relative_to(CONFIG_ROOT.parent)}`', '']
        curve = plot_curves({f'from {init}': runs[init]['curve'] for init in INITS},
                            out_dir / 'plots' / f'{name}_loss.png', f'{name}: training loss', smooth=5)
        if curve:
            lines += [image_link(curve, out_dir, f'{name} loss'), '']
        lines += ['| from MAE | from random |', '|---|---|']
        for mae_picture, random_picture in zip(runs['mae']['pictures'], runs['random']['pictures']):
            lines.append(f'| {image_link(mae_picture, out_dir, "MAE", width=320)} '
                         f'| {image_link(random_picture, out_dir, "random", width=320)} |')
    report.write_text('\n'.join(lines) + '\n')
    (out_dir / 'metrics.json').write_text(json.dumps(
        {name: {init: runs[init]['metrics'] for init in INITS} for name, runs in results.items()}, indent=2))
    return report


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    failures = collect_env.verify()
    if failures:
        sys.exit('\n'.join(failures))
    stages = [] if args.skip_pretrain else [('MAE pretraining', pretrain_expected_s(args))]
    for name in args.tasks:
        stages += [(f'{name}: data + fine-tune from {init} + evaluation',
                    TASKS[name].expected_s * args.scale * TASKS[name].schedule)
                   for init in INITS]
    progress = Progress(stages)
    start = time.time()

    pretrain_s = None
    if args.skip_pretrain:
        checkpoint = pretrained_checkpoint(args.work_dir)
    else:
        progress.next()
        image_dir = prepare_images(args)
        checkpoint = pretrain(args, image_dir)
        pretrain_s = time.time() - start
    print(f'[demo] MAE checkpoint: {checkpoint}')

    results: Dict[str, Dict[str, dict]] = {}
    for name in args.tasks:
        task = TASKS[name]
        results[name] = {}
        for init in INITS:
            progress.next()
            ensure_synthetic(name, task.data_root, log=demo_log)
            results[name][init] = fine_tune(task, init, checkpoint if init == 'mae' else None, args)
            shown = ', '.join(f'{title} {results[name][init]["metrics"].get(key, float("nan")):.3f}'
                              for key, title in task.metrics.items())
            print(f'[demo] {name} from {init}: {shown}')

    report = write_report(args, results, pretrain_s, time.time() - start)
    print(f'\n[demo] done in {duration(time.time() - start)}. Report: {report}')


if __name__ == '__main__':
    main()
