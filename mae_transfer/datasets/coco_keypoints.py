"""COCO person keypoints as a top-down dataset: one data item per person box (mmengine `BaseDataset`).

Standard layout::

    data/coco/annotations/person_keypoints_{train,val}2017.json
    data/coco/{train,val}2017/*.jpg
    data/coco/person_detection_results/COCO_val2017_detections_AP_H_56_person.json   (optional, for testing)

Training (and testing on ground-truth boxes) uses the non-crowd persons with at least one labelled keypoint
(the SimpleBaseline / ViTPose protocol), their boxes clipped to the image. With `bbox_file` (a person
detector's results in COCO results format) every detection of category 1 with score >= `bbox_score_thr`
becomes one item instead, without keypoints; the COCO keypoint metric then rescores and OKS-NMSes them.
The synthetic set of `synthetic/pose.py` is written in this very format.

The file is checked when the dataset is built (`mae_transfer.utils.annotation_checks.check_coco`, with keypoints):
one summary line of what is dropped or marked unlabelled; a missing image of a test set stops the run there.
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log
from pycocotools.coco import COCO

from ..codecs import (COCO_FLIP_INDICES, COCO_KEYPOINT_NAMES, COCO_LOWER_BODY_IDS, COCO_SIGMAS, COCO_SKELETON,
                      COCO_UPPER_BODY_IDS)
from ..registry import DATASETS
from ..utils.annotation_checks import check_coco, index_coco_quietly, load_json_annotations

COCO_KEYPOINT_METAINFO = dict(
    dataset_name='coco',
    keypoint_names=COCO_KEYPOINT_NAMES,
    flip_indices=COCO_FLIP_INDICES,
    upper_body_ids=COCO_UPPER_BODY_IDS,
    lower_body_ids=COCO_LOWER_BODY_IDS,
    skeleton=COCO_SKELETON,
    sigmas=tuple(float(s) for s in COCO_SIGMAS))


def xywh_to_clipped_xyxy(bbox, width: int, height: int) -> np.ndarray:
    """COCO box [x, y, w, h] -> [x1, y1, x2, y2] clipped to the image (pixel coordinates 0..W-1)."""
    x, y, w, h = (float(v) for v in bbox)
    x1, y1 = np.clip(x, 0, width - 1), np.clip(y, 0, height - 1)
    x2, y2 = np.clip(x + w, 0, width - 1), np.clip(y + h, 0, height - 1)
    return np.array([x1, y1, x2, y2], np.float32)


@DATASETS.register_module()
class CocoKeypointsDataset(BaseDataset):
    """Top-down COCO keypoints: each item is one person (`img_path`, `bbox`, `keypoints`, ...).

    Args:
        ann_file: person_keypoints json, relative to `data_root` unless absolute.
        bbox_file: detector results (COCO results json) to use instead of ground-truth boxes (test only).
        bbox_score_thr: detections below this score are dropped.
        data_root: dataset root.
        data_prefix: dict(img='val2017/'): image folder relative to `data_root`.
        pipeline: transform configs.
        test_mode: mmengine's evaluation flag (the same persons are loaded either way).
        **kwargs: passed to mmengine's BaseDataset (lazy_init, serialize_data, indices, max_refetch).
    """

    METAINFO = COCO_KEYPOINT_METAINFO

    def __init__(self, ann_file: str = '', bbox_file: Optional[str] = None, bbox_score_thr: float = 0.0,
                 data_root: str = '', data_prefix: Optional[dict] = None, pipeline: Sequence = (),
                 test_mode: bool = False, **kwargs) -> None:
        self.bbox_file = bbox_file
        self.bbox_score_thr = bbox_score_thr
        super().__init__(ann_file=ann_file, data_root=data_root, data_prefix=dict(data_prefix or dict(img='')),
                         pipeline=list(pipeline), test_mode=test_mode, **kwargs)

    def _join_image(self, file_name: str) -> str:
        return osp.join(self.data_prefix.get('img', ''), file_name)

    def load_data_list(self) -> List[Dict]:
        data = load_json_annotations(self.ann_file, required_keys=('images', 'annotations'),
                                     kind='COCO keypoint annotation')
        data.setdefault('categories', [dict(id=1, name='person')])  # a keypoints-only file may leave them out
        for ann in data['annotations']:
            ann.setdefault('category_id', 1)  # and the annotations' category: people, as read below
        image_dir = self.data_prefix.get('img', '')
        # image files are looked for where they will be read: on this machine, by a pipeline (a dataset without
        # one only serves its annotations, e.g. to a metric, and a sample of a file may come without its images)
        local = '://' not in image_dir and bool(self.pipeline.transforms)
        coco = index_coco_quietly(COCO(), check_coco(data, self.ann_file, keypoints=True, test_mode=self.test_mode,
                                                     image_dir=image_dir if local else None))
        if self.bbox_file:
            return self._load_detections(coco)
        data_list = []
        for img_id in sorted(coco.getImgIds()):
            img = coco.loadImgs(img_id)[0]
            width, height = img['width'], img['height']
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=img_id, iscrowd=False)):
                if ann.get('category_id', 1) != 1 or 'keypoints' not in ann:
                    continue
                keypoints = np.asarray(ann['keypoints'], np.float32).reshape(-1, 3)  # [K, 3]: x, y, v
                if (keypoints[:, 2] > 0).sum() == 0:
                    continue
                bbox = xywh_to_clipped_xyxy(ann['bbox'], width, height)
                if bbox[2] <= bbox[0] or bbox[3] <= bbox[1]:
                    continue
                data_list.append(dict(
                    id=ann['id'], img_id=img_id, img_path=self._join_image(img['file_name']),
                    ori_shape=(height, width), bbox=bbox, bbox_score=1.0, category_id=1,
                    keypoints=keypoints[:, :2].copy(), keypoints_visible=(keypoints[:, 2] > 0).astype(np.float32),
                    area=float(ann.get('area', 0.0))))
        if not data_list:
            raise ValueError(f'{self.ann_file} holds no usable person: none of its {len(coco.anns)} annotations is a '
                             'non-crowd person (category 1) with keypoints, at least one labelled (v > 0), and a box '
                             'inside its image')
        return data_list

    def _load_detections(self, coco: COCO) -> List[Dict]:
        detections = load_json_annotations(self.bbox_file, kind='person detection results', expect_list=True)
        num_keypoints = len(self.metainfo['keypoint_names'])
        data_list = []
        for index, det in enumerate(detections):
            missing = [key for key in ('image_id', 'bbox', 'score') if not isinstance(det, dict) or key not in det]
            if missing:
                raise ValueError(f'detection {index} of {self.bbox_file} lacks {missing}: expected the COCO results '
                                 'format [{"image_id", "category_id", "bbox": [x, y, w, h], "score"}, ...]')
            if det.get('category_id', 1) != 1 or det['score'] < self.bbox_score_thr:
                continue
            if det['image_id'] not in coco.imgs:
                continue
            img = coco.imgs[det['image_id']]
            bbox = xywh_to_clipped_xyxy(det['bbox'], img['width'], img['height'])
            if bbox[2] <= bbox[0] or bbox[3] <= bbox[1]:
                continue
            data_list.append(dict(
                id=index, img_id=det['image_id'], img_path=self._join_image(img['file_name']),
                ori_shape=(img['height'], img['width']), bbox=bbox, bbox_score=float(det['score']),
                category_id=1, keypoints=np.zeros((num_keypoints, 2), np.float32),
                keypoints_visible=np.zeros(num_keypoints, np.float32), area=0.0))
        if not data_list:
            raise ValueError(f'{self.bbox_file} holds no person detection with score >= {self.bbox_score_thr} and a '
                             f'box overlapping an image of {self.ann_file} ({len(detections)} detections in all)')
        print_log(f'{len(data_list)} person detections with score >= {self.bbox_score_thr} from {self.bbox_file}',
                  logger='current')
        return data_list

    def get_data_info(self, idx: int) -> Dict:
        """The item plus the keypoint metadata the transforms need (flip and half-body indices)."""
        info = super().get_data_info(idx)
        info['flip_indices'] = self.metainfo['flip_indices']
        info['upper_body_ids'] = self.metainfo['upper_body_ids']
        info['lower_body_ids'] = self.metainfo['lower_body_ids']
        return info


__all__ = ['COCO_KEYPOINT_METAINFO', 'CocoKeypointsDataset', 'xywh_to_clipped_xyxy']
