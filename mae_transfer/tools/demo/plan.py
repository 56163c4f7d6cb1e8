"""What the demo measures: the pretraining pool, each task's labelled budget and schedule, and the run list.

The setting is the one MAE is for: many unlabeled images (`data/synthetic_pool`, drawn from all tasks'
scene generators, no labels) and few labelled ones per task (tens of images, `data/demo/<task>_<n>`), each
task evaluated on a test split of its own. Every fine-tuning run of a task uses the same config and schedule
from both starts; only the backbone's initial weights differ.
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from mae_transfer.datasets.synthetic import SYNTHETIC_SETS
from mae_transfer.utils.configs import CONFIG_ROOT

PRETRAIN_CONFIG = CONFIG_ROOT / 'pretrain' / 'mae_vit-tiny-p16_1xb32-coslr-50e_synthetic-128x128.py'
POOL_ROOT = Path(SYNTHETIC_SETS['pool'].default_root)
LABELLED_ROOT = Path('data/demo')  # data/demo/<task>_<train images>: the small labelled sets
INITS = ('mae', 'random')  # fine-tune from the MAE checkpoint, and from random initialisation


@dataclass
class DemoTask:
    """One downstream task of the demo: its tiny config, its labelled budget and schedule, what to report."""
    name: str
    title: str
    config: Path
    data_task: str  # the synthetic generator ('cls' for both classification protocols)
    labels: int  # labelled training images (per class for classification)
    test_images: int  # test split size (per class for classification)
    iters: int  # fine-tuning iterations (x --scale)
    metrics: Dict[str, str]  # metric key in the evaluator's output -> column title
    picture_glob: str = ''  # test images to draw predictions on (relative to the data root); '' for none
    infer_options: Dict[str, str] = field(default_factory=dict)  # relative paths resolved under the data root
    options: Dict[str, object] = field(default_factory=dict)  # config changes of the demo's regime (both starts)
    seconds_per_iter: float = 0.3  # on 2 idle cores, for the time-left estimate
    fixed_s: float = 8.0  # building the runner, evaluation, pictures

    def data_root(self, labels: Optional[int] = None) -> Path:
        return LABELLED_ROOT / f'{self.data_task}_{labels or self.labels}'

    def generator_options(self, labels: Optional[int] = None) -> Dict[str, int]:
        labels = labels or self.labels
        if self.data_task == 'cls':
            return dict(train_per_class=labels, val_per_class=self.test_images)
        return dict(num_train=labels, num_val=self.test_images)

    def expected_s(self, scale: float) -> float:
        return self.fixed_s + self.seconds_per_iter * self.iters * scale


CLS_METRICS = {'accuracy/top1': 'top-1'}
TASKS: Dict[str, DemoTask] = {
    'det': DemoTask('det', 'Instance segmentation: Mask R-CNN (ViTDet), synthetic COCO-format shapes',
                    CONFIG_ROOT / 'det' / 'mask-rcnn_vit-tiny-p16_1xb4-lsj-600i_synthetic-128x128.py', 'det',
                    labels=32, test_images=32, iters=60,
                    metrics={'coco/bbox_mAP': 'box AP', 'coco/segm_mAP': 'mask AP'}, picture_glob='val/*.jpg',
                    seconds_per_iter=0.5, fixed_s=12.0),
    'seg': DemoTask('seg', 'Semantic segmentation: UperNet, synthetic ADE20K-layout scenes',
                    CONFIG_ROOT / 'seg' / 'upernet_vit-tiny-p16_1xb8-200i_synthetic-128x128.py', 'seg',
                    labels=24, test_images=32, iters=80, metrics={'mIoU': 'mIoU', 'aAcc': 'aAcc'},
                    picture_glob='images/validation/*.jpg', seconds_per_iter=0.35, fixed_s=8.0,
                    # the recipe's 1e-4 x2 rather than the tiny twin's x10: at 24 images and 100 steps the lower
                    # lr scores higher from both starts (mIoU 54 vs 49 from random, seed 0)
                    options={'optim_wrapper.optimizer.lr': 2e-4}),
    'pose': DemoTask('pose', 'Human pose: top-down heatmaps (ViTPose), synthetic 17-joint figures',
                     CONFIG_ROOT / 'pose' / 'heatmap_vit-tiny-p16_1xb32-300i_synthetic-128x96.py', 'pose',
                     labels=24, test_images=60, iters=80, metrics={'coco/AP': 'AP', 'coco/AR': 'AR'},
                     picture_glob='val/*.png', infer_options={'boxes': 'person_detection_results_val.json'},
                     seconds_per_iter=0.45, fixed_s=6.0,
                     # ~50 crops: a batch of 32 would be most of them. Layer decay 0.42 = 0.75^3 gives the first
                     # of 4 blocks the lr factor ViTPose-B's recipe gives the first of 12 (0.75^12)
                     options={'train_dataloader.batch_size': 16, 'optim_wrapper.paramwise_cfg.decay_rate': 0.42}),
    'cls': DemoTask('cls', 'Classification, fine-tuned: 8 synthetic shape classes',
                    CONFIG_ROOT / 'cls' / 'ft_vit-tiny-p16_1xb32-600i_synthetic-64x64.py', 'cls',
                    labels=10, test_images=25, iters=100, metrics=CLS_METRICS, seconds_per_iter=0.15, fixed_s=4.0,
                    # the cls token rather than the mean of the patch tokens (the official code's --cls_token):
                    # the short pretraining puts what it learns about shapes there (k-NN: 34 % vs 18 %)
                    options={'model.pool': 'cls'}),
    'probe': DemoTask('probe', 'Classification, linear probe of the frozen encoder: 8 synthetic shape classes',
                      CONFIG_ROOT / 'cls' / 'linear-probe_vit-tiny-p16_1xb64-300i_synthetic-64x64.py', 'cls',
                      labels=10, test_images=25, iters=80, metrics=CLS_METRICS, seconds_per_iter=0.12,
                      fixed_s=4.0),
}
# The label-efficiency picture: this task at these budgets (the task's own budget among them).
LABEL_EFFICIENCY_TASK = 'probe'
LABEL_BUDGETS = (4, 10, 25)


@dataclass(frozen=True)
class FineTuneRun:
    """One fine-tuning run: task, start, seed and labelled budget."""
    task: str
    init: str
    seed: int
    labels: int

    @property
    def name(self) -> str:
        return f'{self.task}/{self.init}/labels{self.labels}_seed{self.seed}'

    @property
    def draws_pictures(self) -> bool:  # one run per task and start: the first seed at the main budget
        return self.seed == 0 and self.labels == TASKS[self.task].labels


def fine_tune_runs(tasks: List[str], seeds: int, label_efficiency: bool) -> List[FineTuneRun]:
    """Every run, seed-major so that an interrupted demo has whole comparisons; the extra budgets last."""
    runs = [FineTuneRun(task, init, seed, TASKS[task].labels)
            for seed in range(seeds) for task in tasks for init in INITS]
    if label_efficiency and LABEL_EFFICIENCY_TASK in tasks:
        task = TASKS[LABEL_EFFICIENCY_TASK]
        runs += [FineTuneRun(task.name, init, seed, labels) for labels in LABEL_BUDGETS if labels != task.labels
                 for seed in range(seeds) for init in INITS]
    return runs


def stage_plan(runs: List[FineTuneRun], pretrain_s: Optional[float], scale: float) -> List[Tuple[str, float]]:
    """(stage title, expected seconds) for the progress lines."""
    stages = [] if pretrain_s is None else [('MAE pretraining on the unlabeled pool', pretrain_s)]
    for run in runs:
        task = TASKS[run.task]
        stages.append((f'{run.task}: fine-tune from {run.init}, seed {run.seed}, {run.labels} labelled '
                       f'{"per class" if task.data_task == "cls" else "images"}', task.expected_s(scale)))
    return stages
