"""Procedural data sets, deterministic by seed: the built-in data of the demo, the benchmarks and the tests.

One generator per task, in its own module: `images` (pretraining), `coco` (detection), `ade` (segmentation),
`pose` (keypoints) and `classes` (classification); `pool` draws unlabeled images from all four tasks' scene
functions (the demo's pretraining pool). One way to use them, for every task:

    root = ensure_synthetic('det', cfg=cfg)          # write data/synthetic_det unless it is there; point cfg at it
    options = synthetic_data_options('det', root)    # the same pointing as --cfg-options KEY=VALUE pairs

The default roots are the ones the tiny configs read (`data/synthetic_*` under the working directory).
"""
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Union

from .ade import generate_ade_dataset
from .classes import generate_class_folders
from .coco import generate_coco_instances
from .images import generate_images
from .pool import generate_unlabeled_pool
from .pose import generate_pose_dataset

LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
EVALUATORS = ('val_evaluator', 'test_evaluator')


@dataclass(frozen=True)
class SyntheticSet:
    """A task's synthetic set: its generator, where the tiny config expects it and how to tell it is written."""
    generate: Callable[..., Any]
    default_root: str
    markers: Tuple[str, ...] = ()  # paths under the root that exist once the set is written
    options: Dict[str, Any] = field(default_factory=dict)  # generator options of the tiny config's set

    @property
    def image_folder(self) -> bool:
        """A flat folder of `scene_*.png` (pretraining sets): complete when it holds as many as asked."""
        return self.generate in (generate_images, generate_unlabeled_pool)

    def is_written(self, root: Path, options: Dict[str, Any]) -> bool:
        if self.image_folder:
            return root.is_dir() and len(list(root.glob('scene_*.png'))) == options['num_images']
        return all((root / marker).exists() for marker in self.markers)


SYNTHETIC_SETS: Dict[str, SyntheticSet] = {
    'pretrain': SyntheticSet(generate_images, 'data/synthetic_images', options=dict(num_images=512)),
    'pool': SyntheticSet(generate_unlabeled_pool, 'data/synthetic_pool', options=dict(num_images=2048)),
    'det': SyntheticSet(generate_coco_instances, 'data/synthetic_det',
                        ('annotations/instances_train.json', 'annotations/instances_val.json')),
    'seg': SyntheticSet(generate_ade_dataset, 'data/synthetic_seg', ('images/training', 'annotations/validation')),
    'pose': SyntheticSet(generate_pose_dataset, 'data/synthetic_pose',
                         ('annotations/person_keypoints_train.json', 'annotations/person_keypoints_val.json')),
    'cls': SyntheticSet(generate_class_folders, 'data/synthetic_cls', ('train', 'val'),
                        options=dict(train_per_class=80, val_per_class=25)),
}


def _task_set(task: str) -> SyntheticSet:
    if task not in SYNTHETIC_SETS:
        raise ValueError(f'no synthetic set for task {task!r}; known: {", ".join(SYNTHETIC_SETS)}')
    return SYNTHETIC_SETS[task]


def ensure_synthetic(task: str, root: Union[str, Path, None] = None, cfg: Optional[Any] = None,
                     log: Optional[Callable[[str], None]] = print, **options: Any) -> Path:
    """Write a task's synthetic set under `root` unless it is already there, and point `cfg` at it.

    Args:
        task: 'pretrain', 'pool', 'det', 'seg', 'pose' or 'cls'.
        root: the set's folder; `SYNTHETIC_SETS[task].default_root` (relative to the working directory) if None.
        cfg: an mmengine Config to point at the set (`synthetic_data_options`); loaders and evaluators that the
            config leaves out (or sets to None) are left alone.
        log: called with one line when the set is written; None for silence.
        options: generator options (sizes, seed, ...) over the tiny config's; a set that is already there is
            not checked against them (for 'pretrain': the number of images is).

    Returns:
        The root, as a Path.
    """
    spec = _task_set(task)
    root = Path(root if root is not None else spec.default_root)
    options = {**spec.options, **options}
    if not spec.is_written(root, options):
        if spec.image_folder and root.is_dir():
            for stale in root.glob('scene_*.png'):  # a folder of another size: a smaller one must not keep extras
                stale.unlink()
        start = time.perf_counter()
        spec.generate(root, **options)
        if log is not None:
            log(f'generated the synthetic {task} set in {root} ({time.perf_counter() - start:.1f} s)')
    if cfg is not None:
        for key, value in synthetic_data_options(task, root).items():
            if cfg.get(key.split('.')[0]) is not None:
                cfg.merge_from_dict({key: value})
    return root


def synthetic_data_options(task: str, root: Union[str, Path]) -> Dict[str, str]:
    """The config entries that point a task's tiny config at a synthetic set under `root`, as `--cfg-options`
    keys and values: the data roots of the train / val / test loaders, and the annotation files of the COCO-style
    evaluators (detection, pose) which do not follow the loaders' data roots."""
    _task_set(task)
    root = Path(root).as_posix()
    if task in ('pretrain', 'pool'):
        return {'train_dataloader.dataset.data_root': root}
    if task == 'cls':
        return {'train_dataloader.dataset.data_root': f'{root}/train',
                **{f'{loader}.dataset.{key}': value for loader in LOADERS[1:]
                   for key, value in (('data_root', f'{root}/val'), ('classes', f'{root}/train'))}}
    # mmdet's and our COCO datasets join data_root and ann_file / data_prefix as strings: keep the slash
    data_root = root if task == 'seg' else f'{root}/'
    options = {f'{loader}.dataset.data_root': data_root for loader in LOADERS}
    ann_file = dict(det='annotations/instances_val.json', pose='annotations/person_keypoints_val.json').get(task)
    if ann_file:
        options.update({f'{evaluator}.ann_file': f'{root}/{ann_file}' for evaluator in EVALUATORS})
    return options


__all__ = [
    'SYNTHETIC_SETS', 'SyntheticSet', 'ensure_synthetic', 'generate_ade_dataset', 'generate_class_folders',
    'generate_coco_instances', 'generate_images', 'generate_pose_dataset', 'generate_unlabeled_pool',
    'synthetic_data_options'
]
