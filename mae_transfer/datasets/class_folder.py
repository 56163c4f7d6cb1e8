"""Labelled image folders for classification: `root/<class>/**/<image>` (ImageNet's `train/` and `val/` as is).

Class indices follow the sorted names of the class sub-folders (the ImageNet / torchvision convention), or an
explicit `classes` list, so that a validation folder lacking some classes still uses the training indices.
Images go through timm's `create_transform`: for training RandomResizedCrop + flip + RandAugment + random
erasing as in the official MAE fine-tuning recipe, for evaluation a resize to `input_size / crop_pct`
(256 for 224) and a centre crop. Each item is `dict(inputs=normalised float [3, H, W], data_samples=label)`,
batched with `default_collate`. As in `UnlabeledImageFolder`, an image that cannot be decoded is logged once
and replaced by the next readable one of the folder (with that image's label).
"""
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple, Union

from mmengine.logging import print_log
from PIL import Image, ImageOps
from torch.utils.data import Dataset

from ..registry import DATASETS
from ..utils.images import UnreadableImageError, load_rgb
from .image_folder import IMAGE_EXTENSIONS
from .log_once import claim_run_folder, log_skipped_once

# Evaluation transform of the official code: resize to 224 / 0.875 = 256, centre crop 224, bicubic.
DEFAULT_EVAL_TRANSFORM = dict(input_size=224, is_training=False, interpolation='bicubic', crop_pct=224 / 256)


def find_classes(root: Union[str, Path], extensions: Sequence[str] = IMAGE_EXTENSIONS) -> List[str]:
    """Sorted names of the sub-folders of `root` that hold at least one image (searched recursively); sub-folders
    without images are left out with a logged warning."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f'class folder root {root} does not exist or is not a folder')
    suffixes = {ext.lower() for ext in extensions}
    folders = sorted(d for d in root.iterdir() if d.is_dir())
    classes = [d.name for d in folders if any(p.suffix.lower() in suffixes for p in d.rglob('*'))]
    if not classes:
        raise FileNotFoundError(f'no class sub-folders with images under {root} (expected {root}/<class>/*.JPEG)')
    empty = [d.name for d in folders if d.name not in classes]
    if empty:  # left out: the indices of the later classes move down, so say so
        print_log(f'class folder(s) without images under {root} left out of the class list: {empty}; '
                  f'{len(classes)} classes remain (pass `classes=` to fix the index order)', logger='current',
                  level=logging.WARNING)
    return classes


def read_class_list(classes: Union[str, Path, Sequence[str]]) -> List[str]:
    """A class list given as names, as a text file with one name per line, or as a folder of class sub-folders
    (e.g. the training folder, so that a validation folder lacking classes keeps the training indices)."""
    if isinstance(classes, (str, Path)):
        path = Path(classes).expanduser()
        if path.is_dir():
            return find_classes(path)
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return [str(name) for name in classes]


def _posterize(img: Image.Image, bits_to_keep: int, **_: Any) -> Image.Image:
    """timm's posterize op, valid for 0 bits too: keeping 0 bits makes every pixel 0, as older Pillow did;
    Pillow >= 12 raises instead, which RandAugment 'inc1' at magnitude >= 10 (m9 + mstd0.5 noise) reaches."""
    if bits_to_keep >= 8:
        return img
    if bits_to_keep <= 0:
        return Image.new(img.mode, img.size)
    return ImageOps.posterize(img, bits_to_keep)


def _fix_timm_posterize() -> None:
    """Point timm's Posterize* RandAugment ops at `_posterize` (only 0 bits behave differently)."""
    from timm.data import auto_augment
    for name in ('Posterize', 'PosterizeIncreasing', 'PosterizeOriginal'):
        if name in auto_augment.NAME_TO_OP:
            auto_augment.NAME_TO_OP[name] = _posterize


@DATASETS.register_module()
class ClassFolderDataset(Dataset):
    """Images of `data_root/<class>/` with their class index.

    Args:
        data_root: folder of class sub-folders (e.g. data/imagenet/train).
        transform: keyword arguments of `timm.data.create_transform` (input_size, is_training, auto_augment,
            interpolation, re_prob, re_mode, crop_pct, scale, ...); the official evaluation transform when
            left out.
        classes: class names in index order, a text file with one per line, or another folder of class
            sub-folders whose sorted names to use (the training folder); the sorted sub-folders of
            `data_root` when left out. Sub-folders not in the list are ignored; listed classes without a
            folder are allowed (they just have no images here).
        extensions: file extensions counted as images.
    """

    def __init__(self, data_root: Union[str, Path], transform: Optional[Dict[str, Any]] = None,
                 classes: Optional[Union[str, Path, Sequence[str]]] = None,
                 extensions: Sequence[str] = IMAGE_EXTENSIONS) -> None:
        from timm.data import create_transform  # timm's transforms pull in torchvision; build on first use
        _fix_timm_posterize()

        self.data_root = Path(data_root).expanduser()
        self.classes = read_class_list(classes) if classes is not None else find_classes(self.data_root, extensions)
        if len(set(self.classes)) != len(self.classes):
            raise ValueError('the class list names a class twice')
        suffixes = {ext.lower() for ext in extensions}
        self.samples: List[Tuple[Path, int]] = []
        for index, name in enumerate(self.classes):
            folder = self.data_root / name
            if folder.is_dir():
                self.samples.extend((path, index) for path in sorted(folder.rglob('*'))
                                    if path.suffix.lower() in suffixes and path.is_file())
        if not self.samples:
            raise FileNotFoundError(f'no images of the classes {self.classes[:5]}... under {self.data_root}')
        self.transform_cfg = dict(transform) if transform is not None else dict(DEFAULT_EVAL_TRANSFORM)
        self.transform = create_transform(**self.transform_cfg)
        self.unreadable: Set[int] = set()
        claim_run_folder()  # in the main process, before the DataLoader workers: they share the skip log
        self.metainfo = dict(classes=tuple(self.classes))

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> List[int]:
        return [label for _, label in self.samples]

    def __getitem__(self, index: int) -> Dict[str, Any]:
        for offset in range(len(self.samples)):
            candidate = (index + offset) % len(self.samples)
            if candidate in self.unreadable:
                continue
            path, label = self.samples[candidate]
            try:
                image = load_rgb(path)
            except UnreadableImageError as error:
                self.unreadable.add(candidate)  # per worker process: not read again by this worker
                log_skipped_once(error)  # and logged once for the whole run, whatever the number of workers
                continue
            return dict(inputs=self.transform(image), data_samples=label)  # inputs: [3, H, W] float, normalised
        raise RuntimeError(f'none of the {len(self.samples)} images under {self.data_root} could be read')


__all__ = ['ClassFolderDataset', 'DEFAULT_EVAL_TRANSFORM', 'find_classes', 'read_class_list']
