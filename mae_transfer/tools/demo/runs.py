"""The demo's two kinds of run, each an ordinary mmengine Runner on a shipped tiny config: MAE pretraining (with
the k-NN monitor) and one fine-tuning + evaluation run. mmengine's console output goes to the demo's log file;
the caller prints the concise view."""
import contextlib
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, TextIO

from mmengine.config import Config
from mmengine.runner import Runner

from mae_transfer.apis import task_module
from mae_transfer.checkpoint import find_latest_checkpoint
from mae_transfer.datasets.synthetic import synthetic_data_options
from mae_transfer.engine import KNNMonitorHook, add_run_safety
from mae_transfer.tools import use_own_instances
from mae_transfer.utils.configs import set_pretrained
from mae_transfer.utils.report import numeric_metrics, read_scalars, training_curve
from mae_transfer.utils.schedule import set_schedule_length

from .plan import PRETRAIN_CONFIG, TASKS, FineTuneRun


@contextlib.contextmanager
def logged_to(log: TextIO) -> Iterator[None]:
    """Send everything printed (mmengine's console logger, warnings, data-loader workers, C extensions) to `log`.

    Both Python's streams and file descriptors 1 and 2 point at the log inside the context (spawned workers
    and C code write to the descriptors); the run's own log file in its work dir is written as usual.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            yield
    finally:
        log.flush()
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)


@dataclass
class PretrainResult:
    checkpoint: Path
    seconds: float
    knn: List[tuple] = field(default_factory=list)  # (iteration, top-1 %) from the k-NN monitor
    knn_cost_s: float = 0.0


def pretrain(work_dir: Path, image_dir: Path, num_images: int, epochs: Optional[int], knn_root: Optional[Path],
             knn_evaluations: int, log: TextIO) -> PretrainResult:
    """Pretrain the tiny MAE on the `num_images` of `image_dir` for `epochs` (the config's if None), with the
    k-NN monitor on `knn_root` evaluating `knn_evaluations` times after the one at initialisation."""
    cfg = Config.fromfile(str(PRETRAIN_CONFIG))
    cfg.work_dir = str(work_dir)
    cfg.train_dataloader.dataset.data_root = str(image_dir)
    if epochs:
        set_schedule_length(cfg, epochs=epochs)  # warmup and cosine stretched with it
    cfg.default_hooks.checkpoint.interval = cfg.train_cfg.max_epochs  # the demo needs the last one only
    if knn_root is not None:
        iters = cfg.train_cfg.max_epochs * -(-num_images // cfg.train_dataloader.batch_size)
        cfg.custom_hooks.append(dict(type='mae_transfer.KNNMonitorHook', data_root=str(knn_root),
                                     interval=max(1, iters // knn_evaluations)))
    add_run_safety(cfg)
    start = time.time()
    with logged_to(log):
        runner = Runner.from_cfg(cfg)
        runner.train()
    knn = next((hook for hook in runner.hooks if isinstance(hook, KNNMonitorHook)), None)
    return PretrainResult(Path(find_latest_checkpoint(str(work_dir))), time.time() - start,
                          knn=list(knn.history) if knn else [], knn_cost_s=knn.cost_s if knn else 0.0)


@dataclass
class FineTuneResult:
    run: FineTuneRun
    metrics: Dict[str, float]
    train_s: float
    iters: int
    curve: tuple
    pictures: List[Path] = field(default_factory=list)


def fine_tune(run: FineTuneRun, checkpoint: Optional[Path], work_dir: Path, scale: float, num_pictures: int,
              log: TextIO) -> FineTuneResult:
    """Train the task's tiny config on its labelled budget from `checkpoint` (None: random init) with the seed,
    evaluate it on the task's test split, and draw pictures when the run is the one that draws them."""
    task = TASKS[run.task]
    data_root = task.data_root(run.labels)
    cfg = Config.fromfile(str(task.config))
    cfg.work_dir = str(work_dir)
    cfg.merge_from_dict(synthetic_data_options(task.data_task, data_root))
    set_pretrained(cfg, None if checkpoint is None else str(checkpoint))
    set_schedule_length(cfg, iters=max(1, round(task.iters * scale)))
    cfg.randomness = dict(seed=run.seed)
    cfg.merge_from_dict(dict(task.options))
    for loader in ('train_dataloader', 'test_dataloader'):
        # Data in the main process: tens of small images load in milliseconds, while the workers of one run,
        # collected during a later run, stalled it for up to a minute (each join waits for a worker whose
        # prefetched batches nobody reads).
        cfg[loader].update(num_workers=0, persistent_workers=False)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None  # evaluated once, by runner.test() below
    pictures = run.draws_pictures and num_pictures > 0 and bool(task.picture_glob)
    if not pictures:
        cfg.default_hooks.checkpoint = None  # nothing reads the weights afterwards: save no checkpoint
    use_own_instances(cfg, run.name.replace('/', '_'))
    add_run_safety(cfg)
    start = time.time()
    with logged_to(log):
        runner = Runner.from_cfg(cfg)
        runner.train()
        train_s = time.time() - start
        metrics = numeric_metrics(runner.test())
        drawn: List[Path] = []
        if pictures:
            trained = find_latest_checkpoint(str(work_dir))
            images = sorted(data_root.glob(task.picture_glob))[:num_pictures]
            options = {key: str(data_root / value) for key, value in task.infer_options.items()}
            drawn = [Path(p) for p in task_module(cfg).infer_images(
                cfg, trained, [str(p) for p in images], str(work_dir / 'pictures'), **options)]
    return FineTuneResult(run, metrics, train_s, cfg.train_cfg.max_iters, training_curve(read_scalars(work_dir)),
                          drawn)

