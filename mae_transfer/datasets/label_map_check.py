"""A pipeline check that a segmentation label map can be read and has its image's size.

mmseg's `LoadAnnotations` takes any PNG: a label map of another size (a resized export, the wrong file) goes on
through the random crop and flip beside the image, misaligned, and trains on wrong labels without a word; a
damaged one fails with PIL's "cannot identify image file <BytesIO ...>", which names no file. Put this
transform right before `LoadAnnotations`, after `LoadImageFromFile` (the segmentation configs do). It reads the
PNG's header and verifies its chunks without decoding the pixels, which `LoadAnnotations` does next.
"""
import io
import logging
from typing import Optional

from mmcv.transforms import BaseTransform
from mmengine import fileio
from mmengine.logging import print_log
from PIL import Image

from ..registry import TRANSFORMS


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
    """

    def __init__(self, on_mismatch: str = 'error', backend_args: Optional[dict] = None):
        if on_mismatch not in ('error', 'skip'):
            raise ValueError(f"on_mismatch must be 'error' or 'skip', got {on_mismatch!r}")
        self.on_mismatch = on_mismatch
        self.backend_args = backend_args

    def transform(self, results: dict) -> Optional[dict]:
        label_path = results.get('seg_map_path')
        if label_path is None:
            return results
        problem = self._problem(label_path, tuple(results['ori_shape'][:2]), results.get('img_path'))
        if problem is None:
            return results
        if self.on_mismatch == 'error':
            raise ValueError(problem)
        print_log(f'skipping: {problem}', logger='current', level=logging.WARNING)
        return None

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
        return f'{self.__class__.__name__}(on_mismatch={self.on_mismatch!r})'


__all__ = ['CheckLabelMap']
