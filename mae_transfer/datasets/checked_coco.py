"""mmdet's `CocoDataset` with clear errors for the annotation file mistakes it would otherwise hide.

mmdet hands the file to pycocotools, so a file that is not JSON fails with a bare `JSONDecodeError` whose
message names no file, and a config class missing from the file's categories silently drops every box of that
class (all of them, when `metainfo=dict(classes=...)` was forgotten). This subclass names the file in both cases,
and checks the file's content when the dataset is built, before training starts
(`mae_transfer.utils.annotation_checks.check_coco`: one summary line of what is dropped; a missing image of a
validation or test set stops the run there instead of in a DataLoader worker at the end of training).
The detection configs use it as `type='mae_transfer.CheckedCocoDataset'`; everything else is mmdet's.

This module imports mmdet, so it is registered through its own entry in the dataset registry's `locations`
instead of from `mae_transfer.datasets`, which mmseg configs import for our transforms: segmentation never
imports mmdet (building one of our own-scope datasets does, once).
"""
import functools
from typing import List, Optional

from mmdet.datasets import CocoDataset
from mmdet.datasets.api_wrappers import COCO

from ..registry import DATASETS
from ..utils.annotation_checks import check_coco, index_coco_quietly, load_json_annotations

KIND = 'COCO instance annotation'


class CheckedCOCO(COCO):
    """mmdet's COCO API over a file checked by `load_json_annotations`; pycocotools' prints stay off stdout."""

    def __init__(self, annotation_file: str, data: Optional[dict] = None):
        super().__init__()
        if data is None:
            data = load_json_annotations(annotation_file, ('images', 'annotations', 'categories'), kind=KIND)
        index_coco_quietly(self, data)
        self.img_ann_map, self.cat_img_map = self.imgToAnns, self.catToImgs  # mmdet's aliases, set in its init


@DATASETS.register_module()
class CheckedCocoDataset(CocoDataset):
    """`CocoDataset` that names the annotation file when it is unreadable or lacks one of the config's classes."""

    COCOAPI = CheckedCOCO

    def load_data_list(self) -> List[dict]:
        data = check_coco(load_json_annotations(self.ann_file, ('images', 'annotations', 'categories'), kind=KIND),
                          self.ann_file, image_dir=self._local_image_dir(), test_mode=self.test_mode)
        # mmdet's load_data_list builds its COCO API from the file's path: hand it the checked data instead
        self.COCOAPI = functools.partial(CheckedCOCO, data=data)
        try:
            data_list = super().load_data_list()
        finally:
            del self.COCOAPI  # back to the class attribute
        classes = list(self.metainfo['classes'])
        if len(self.cat_ids) < len(classes):
            categories = load_json_annotations(self.ann_file, kind=KIND)['categories']
            names = [category['name'] for category in categories]
            missing = [name for name in classes if name not in names]
            raise ValueError(f'{KIND} file {self.ann_file} has no category named {missing} (its categories: '
                             f'{names[:20]}); set metainfo=dict(classes=...) in the dataset config to names it uses')
        return data_list

    def _local_image_dir(self) -> Optional[str]:
        """The image folder when images will be read from this machine's file system (their existence is checked
        there), else None: a remote backend, or no pipeline (a dataset that only serves its annotations)."""
        folder = self.data_prefix.get('img', '')
        if self.backend_args or '://' in folder or not self.pipeline.transforms:
            return None
        return folder


__all__ = ['CheckedCOCO', 'CheckedCocoDataset']
