"""A pipeline check that a segmentation label map has its image's size.

mmseg's `LoadAnnotations` takes any PNG: a label map of another size (a resized export, the wrong file) goes on
through the random crop and flip beside the image, misaligned, and trains on wrong labels without a word. Put
this transform right after `LoadAnnotations` (the segmentation configs do); without a label map (inference
pipelines drop `LoadAnnotations`) it passes the sample through.
"""
from typing import Optional

from mmcv.transforms import BaseTransform
from mmengine.logging import print_log

from ..registry import TRANSFORMS


@TRANSFORMS.register_module()
class CheckLabelMapSize(BaseTransform):
    """Compare `gt_seg_map` (H, W) with the loaded image's size (`ori_shape`, before any resize).

    Args:
        on_mismatch: 'error' raises a `ValueError` naming both files; 'skip' logs a warning and drops the
            sample (mmengine's dataset then draws another one in training; a test-time pipeline refuses a
            dropped sample, so evaluation stops either way).
    """

    def __init__(self, on_mismatch: str = 'error'):
        if on_mismatch not in ('error', 'skip'):
            raise ValueError(f"on_mismatch must be 'error' or 'skip', got {on_mismatch!r}")
        self.on_mismatch = on_mismatch

    def transform(self, results: dict) -> Optional[dict]:
        if 'gt_seg_map' not in results:
            return results  # inference: mmseg's inference_model (and ours) drop LoadAnnotations from the pipeline
        label_shape = tuple(results['gt_seg_map'].shape[:2])
        image_shape = tuple(results['ori_shape'][:2])
        if label_shape == image_shape:
            return results
        message = (f"label map {results.get('seg_map_path')} is {label_shape[1]}x{label_shape[0]} (WxH) but its "
                   f"image {results.get('img_path')} is {image_shape[1]}x{image_shape[0]}: the labels would not "
                   'line up with the pixels')
        if self.on_mismatch == 'error':
            raise ValueError(message)
        print_log(f'skipping: {message}', logger='current', level=30)  # logging.WARNING
        return None

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(on_mismatch={self.on_mismatch!r})'


__all__ = ['CheckLabelMapSize']
