"""`LoadImageSkipUnreadable`: mmcv's `LoadImageFromFile` with the toolkit's image reader and skip policy.

mmcv's transform stops a training run on the first damaged file (an AssertionError 'failed to load image', or
cv2's own error for an empty one), hours into it. This one decodes with `mae_transfer.utils.images` (the same
pixels as every other reader of the toolkit) and, for a file that cannot be read, logs
"skipped unreadable image PATH: REASON" (once per file for the whole run, whatever the number of DataLoader
workers: `log_once.py`) and returns None: mmengine's `BaseDataset.__getitem__` then draws another index (up to
`max_refetch` times), so the run goes on. With `skip_unreadable=False` (test pipelines,
where a skipped image would change the metric) it raises `UnreadableImageError` naming the file instead.

    train_pipeline = [dict(type='mae_transfer.LoadImageSkipUnreadable'), ...]
"""
from typing import Optional

import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio

from ..registry import TRANSFORMS
from ..utils.images import UnreadableImageError, decode_rgb, to_array
from .log_once import claim_run_folder, log_skipped_once


@TRANSFORMS.register_module()
class LoadImageSkipUnreadable(LoadImageFromFile):
    """Load `results['img_path']` as BGR uint8 [H, W, 3] (mmcv's convention); skip or name an unreadable file.

    Args:
        skip_unreadable: log and return None (training) rather than raise `UnreadableImageError`.
        **kwargs: `LoadImageFromFile`'s: to_float32, backend_args (files on another storage backend). Its
            color_type and imdecode_backend are not used: every image is decoded as colour by Pillow.
    """

    def __init__(self, skip_unreadable: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.skip_unreadable = skip_unreadable
        claim_run_folder()  # here, in the main process, so that every DataLoader worker shares the skip log

    def transform(self, results: dict) -> Optional[dict]:
        path = results['img_path']
        try:
            try:
                data = fileio.get(path, backend_args=self.backend_args)
            except OSError as error:  # missing, no permission, a symlink loop
                raise UnreadableImageError(path, error.strerror or str(error)) from error
            image = to_array(decode_rgb(data, path), channel_order='bgr')  # image: [H, W, 3] uint8 BGR
        except UnreadableImageError as error:
            if not self.skip_unreadable:
                raise
            log_skipped_once(error)  # once for the whole run, not once per worker
            return None
        if self.to_float32:
            image = image.astype(np.float32)
        results['img'] = image
        results['img_shape'] = image.shape[:2]
        results['ori_shape'] = image.shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(skip_unreadable={self.skip_unreadable}, to_float32={self.to_float32})'


__all__ = ['LoadImageSkipUnreadable']
