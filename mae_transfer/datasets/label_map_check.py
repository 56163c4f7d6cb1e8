"""A pipeline check that a segmentation label map can be read, has its image's size and (given `num_classes`)
holds only class ids and the ignore index.

mmseg's `LoadAnnotations` takes any PNG: a label map of another size (a resized export, the wrong file) goes on
through the random crop and flip beside the image, misaligned, and trains on wrong labels without a word; a
damaged one fails with PIL's "cannot identify image file <BytesIO ...>", which names no file. Put this
transform right before `LoadAnnotations`, after `LoadImageFromFile` (the segmentation configs do). It reads the
PNG's header and verifies its chunks without decoding the pixels, which `LoadAnnotations` does next.

With `num_classes`, the values are checked too, lazily: each label map is decoded once more the first time a
process loads it (a small 8-bit PNG; later epochs cost nothing), not all at start-up, which would read every
map of a big dataset before the first step. A value outside the classes and the ignore index would otherwise
stop training at the loss ("Target 7 is out of bounds", or a CUDA device-side assert) or count wrongly in mIoU.
Such a map is named with its wrong values (error), or logged once for the whole run and skipped ('skip').
"""
import io
from typing import Optional, Set

import numpy as np

from mmcv.transforms import BaseTransform
from mmengine import fileio
from PIL import Image

from ..registry import TRANSFORMS
from .log_once import claim_run_folder, log_once


@TRANSFORMS.register_module()
class CheckLabelMap(BaseTransform):
    """Refuse a label map (`seg_map_path`) that is unreadable or not of the loaded image's size (`ori_shape`).

    Samples without a label map pass through: inference pipelines (mmseg's `inference_model`, ours) drop
    `LoadAnnotations` and have no `seg_map_path`.

    Args:
        on_mismatch: 'error' raises a `ValueError` naming both files; 'skip' logs a warning and drops the
            sample (mmengine's dataset then draws another one in training; a test-time pipeline refuses a
            dropped sample, so evaluation stops either way).
        backend_args: mmengine file backend arguments, as given to `LoadAnnotations`.
        num_classes: check the values too: class ids 0..num_classes-1 (1..num_classes, and 0 as ignored, for a
            dataset with `reduce_zero_label`) and `ignore_index`; None leaves the values unchecked.
        ignore_index: the label of unlabelled pixels (mmseg's 255).
    """

    def __init__(self, on_mismatch: str = 'error', backend_args: Optional[dict] = None,
                 num_classes: Optional[int] = None, ignore_index: int = 255):
        if on_mismatch not in ('error', 'skip'):
            raise ValueError(f"on_mismatch must be 'error' or 'skip', got {on_mismatch!r}")
        if num_classes is not None and num_classes < 1:
            raise ValueError(f'num_classes must be at least 1, got {num_classes}')
        self.on_mismatch = on_mismatch
        self.backend_args = backend_args
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.values_checked: Set[str] = set()  # per process: each map's values are decoded once
        claim_run_folder()  # in the main process, so that the DataLoader workers share the once-per-file log

    def transform(self, results: dict) -> Optional[dict]:
        label_path = results.get('seg_map_path')
        if label_path is None:
            return results
        problem = self._problem(label_path, tuple(results['ori_shape'][:2]), results.get('img_path'))
        if problem is None and self.num_classes is not None and label_path not in self.values_checked:
            problem = self._value_problem(label_path, bool(results.get('reduce_zero_label', False)))
            if problem is None:
                self.values_checked.add(label_path)
        if problem is None:
            return results
        if self.on_mismatch == 'error':
            raise ValueError(problem)
        log_once(f'label map {label_path}', f'skipping: {problem}')  # once for the whole run, not per worker
        return None

    def _value_problem(self, label_path: str, reduce_zero_label: bool) -> Optional[str]:
        """Which values of the label map are neither a class id nor the ignore index, or None."""
        with Image.open(io.BytesIO(fileio.get(label_path, backend_args=self.backend_args))) as label:
            values = np.unique(np.asarray(label))  # values: the distinct raw labels of the map
        first = 1 if reduce_zero_label else 0  # reduce_zero_label: raw 0 is ignored, raw k is class k - 1
        allowed = (values >= 0) & (values < first + self.num_classes) | (values == self.ignore_index)
        if allowed.all():
            return None
        wrong = [int(value) for value in values[~allowed]]
        classes = f'{first}..{first + self.num_classes - 1}' + (' (0: ignored, reduce_zero_label)' if first else '')
        return (f'label map {label_path} holds the values {wrong[:10]}{"..." if len(wrong) > 10 else ""}, which '
                f'are neither a class id ({classes}) nor the ignore index {self.ignore_index}: is it a colour '
                'image, or labelled for another class list?')

    def _problem(self, label_path: str, image_shape: tuple, image_path: Optional[str]) -> Optional[str]:
        """What is wrong with the label map, or None."""
        try:
            with Image.open(io.BytesIO(fileio.get(label_path, backend_args=self.backend_args))) as label:
                width, height = label.size
                label.verify()  # chunk checksums and structure, without decoding the pixels
        except FileNotFoundError:
            raise
        except Exception as error:  # PIL raises several types for damaged files
            return f'label map {label_path} cannot be read ({type(error).__name__}: {error})'
        if (height, width) == image_shape:
            return None
        return (f'label map {label_path} is {width}x{height} (WxH) but its image {image_path} is '
                f'{image_shape[1]}x{image_shape[0]}: the labels would not line up with the pixels')

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(on_mismatch={self.on_mismatch!r}, num_classes={self.num_classes}, '
                f'ignore_index={self.ignore_index})')


__all__ = ['CheckLabelMap']
