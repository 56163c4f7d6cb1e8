"""Detection / instance segmentation inference: a config + checkpoint -> predictions and pictures.

    from mae_transfer.apis import init_model, inference
    model = init_model('configs/det/mask-rcnn_vit-tiny-p16_1xb4-lsj-600i_synthetic-128x128.py', 'iter_600.pth')
    predictions = inference(model, ['a.jpg', 'b.jpg'])   # DetDataSample per image

The model is built by mmdet's `init_detector` and loaded by `mae_transfer.checkpoint.load_weights` (class names
from the checkpoint's `dataset_meta`, else from the config's test dataset, else COCO's); images go through the
config's test pipeline without its annotation loading, and `mae_transfer.visualization.draw_detections` (mmdet's `DetLocalVisualizer`) draws boxes, masks, class names
and scores. mmdet is imported inside the functions, so importing `mae_transfer.apis` stays light.
"""
import copy
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.config import Config
from mmengine.logging import print_log
from torch import nn

from ..visualization import render_detections

ImageLike = Union[str, Path, np.ndarray]


def init_model(config: Union[str, Path, Config], checkpoint: Optional[str] = None, device: str = 'cpu',
               allow_partial: bool = False) -> nn.Module:
    """A detector in eval mode with the trained weights of `checkpoint` (the backbone's pretrained init is skipped).

    Args:
        config: the config the checkpoint was trained with (a path or a Config; not modified).
        checkpoint: the whole trained model: written by tools/train.py, or mmdet's / detectron2's ViTDet release
            (`mae_transfer.checkpoint.load_weights`); None keeps the initialisation.
        device: 'cpu' or 'cuda[:N]'.
        allow_partial: go on when the checkpoint leaves a part of the model (neck, heads) at its initialisation.
    """
    from mmdet.apis import init_detector

    from ..checkpoint import load_weights, read_checkpoint_file, resolve_checkpoint_path

    cfg = Config.fromfile(str(config)) if not isinstance(config, Config) else copy.deepcopy(config)
    if cfg.get('default_scope') != 'mmdet':
        raise ValueError(f'not a detection config (default_scope={cfg.get("default_scope")!r}, expected mmdet)')
    cfg.model.backbone.init_cfg = None  # the checkpoint holds every weight
    with warnings.catch_warnings():  # mmdet warns that no checkpoint means COCO's class names: ours follows
        warnings.simplefilter('ignore', UserWarning)
        model = init_detector(cfg, None, device='cpu')  # dataset_meta: COCO's classes
    loaded = {}
    if checkpoint is not None:
        loaded, hints = read_checkpoint_file(resolve_checkpoint_path(checkpoint, prefer_safetensors=False))
        load_weights(model, loaded, source=str(checkpoint), hints=hints, complete=not allow_partial)
    meta = loaded.get('meta') if isinstance(loaded.get('meta'), dict) else {}
    test_set = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    # the names the model was trained with, else the config's test set's, else COCO's
    classes = (meta.get('dataset_meta') or {}).get('classes') or (test_set.get('metainfo') or {}).get('classes')
    if classes:
        model.dataset_meta = dict(model.dataset_meta or {}, classes=tuple(classes))
    return model.to(device).eval()


def image_pipeline(cfg: Config, from_array: bool = False) -> Any:
    """The config's test pipeline without `LoadAnnotations` (images only), as an mmcv Compose; its first step
    reads arrays instead of files when `from_array`."""
    from mmcv.transforms import Compose
    from mmdet.utils import get_test_pipeline_cfg

    steps = [step for step in copy.deepcopy(get_test_pipeline_cfg(cfg))
             if str(step['type']).split('.')[-1] != 'LoadAnnotations']
    if from_array:
        steps[0] = dict(type='mmdet.LoadImageFromNDArray')
    return Compose(steps)


def inference(model: nn.Module, images: Sequence[ImageLike]) -> list:
    """DetDataSample predictions (`pred_instances`: bboxes in image pixels, labels, scores, masks) per image.

    Args:
        model: from `init_model`.
        images: image files, or BGR uint8 arrays [H, W, 3] (mmcv's convention).
    """
    from mmdet.apis import inference_detector

    from_array = [isinstance(image, np.ndarray) for image in images]
    if any(from_array) and not all(from_array):
        raise ValueError('pass either image files or arrays, not both in one call')
    images = [image if isinstance(image, np.ndarray) else str(image) for image in images]
    return inference_detector(model, images, test_pipeline=image_pipeline(model.cfg, from_array=any(from_array)))


def render(model: nn.Module, image: np.ndarray, prediction: Any, score_thr: Optional[float] = None,
           **options: Any) -> np.ndarray:
    """The instances scoring at least `score_thr` (default 0.3) drawn on a copy of a BGR image [H, W, 3]."""
    rgb = render_detections(np.ascontiguousarray(image[..., ::-1]), prediction, model.dataset_meta['classes'],
                            score_thr=0.3 if score_thr is None else score_thr)
    return np.ascontiguousarray(rgb[..., ::-1])


def to_json(model: nn.Module, prediction: Any) -> Dict[str, Any]:
    """Every predicted instance: box (x1, y1, x2, y2 in image pixels), score, label, class name and, for Mask R-CNN,
    the mask as COCO run-length encoding (pycocotools `mask.decode` reads it back)."""
    from pycocotools import mask as mask_utils

    instances = prediction.pred_instances.cpu()
    classes = model.dataset_meta['classes']
    masks = instances.masks.numpy().astype(np.uint8) if 'masks' in instances else None  # [N, H, W]
    records = []
    for index, (box, score, label) in enumerate(zip(instances.bboxes.tolist(), instances.scores.tolist(),
                                                     instances.labels.tolist())):
        record = dict(bbox=[round(v, 2) for v in box], score=round(score, 4), label=int(label),
                      **{'class': classes[label] if label < len(classes) else str(label)})
        if masks is not None:
            rle = mask_utils.encode(np.asfortranarray(masks[index]))
            record['mask'] = dict(size=[int(v) for v in rle['size']], counts=rle['counts'].decode('ascii'))
        records.append(record)
    return dict(instances=records)


def person_boxes(model: nn.Module, image: np.ndarray, class_name: str = 'person',
                 score_thr: float = 0.3) -> Tuple[np.ndarray, List[float]]:
    """Boxes [N, 4] (x, y, w, h) and scores of one class in a BGR image: the person detector of top-down pose.

    Raises:
        ValueError: the detector has no class `class_name` (the message lists its classes).
    """
    classes = list(model.dataset_meta['classes'])
    if class_name not in classes:
        raise ValueError(f'the detector has no class {class_name!r}; its classes: {", ".join(classes)} '
                         '(choose one with --det-class)')
    instances = inference(model, [image])[0].pred_instances.cpu()
    keep = (instances.labels == classes.index(class_name)) & (instances.scores >= score_thr)
    boxes = instances.bboxes[keep].numpy().astype(np.float32)  # [N, 4] x1, y1, x2, y2
    boxes[:, 2:] -= boxes[:, :2]  # -> x, y, w, h
    return boxes, instances.scores[keep].tolist()


def infer_images(cfg: Config, checkpoint: str, image_paths: Sequence[str], out_dir: str, device: str = 'cpu',
                 score_thr: float = 0.3, **options: Any) -> List[Path]:
    """Predict on image files and write one picture per image (`<out_dir>/<stem>.jpg`).

    Args:
        cfg: the detection config the checkpoint was trained with.
        checkpoint: the trained checkpoint.
        image_paths: image files.
        out_dir: output folder (created).
        device: 'cpu' or 'cuda[:N]'.
        score_thr: instances scoring below it are not drawn.
        options: options of other tasks' helpers (e.g. pose's `boxes`), ignored here with a note.

    Returns:
        the written picture files, in the order of `image_paths`.
    """
    from .annotate import write_pictures

    ignored = {key: value for key, value in options.items() if value is not None}
    if ignored:
        print_log(f'detection inference ignores the options {sorted(ignored)}', logger='current')
    return write_pictures(init_model(cfg, checkpoint, device=device), image_paths, out_dir, score_thr=score_thr)


PICTURE_SUFFIX = '.jpg'
__all__ = ['PICTURE_SUFFIX', 'image_pipeline', 'infer_images', 'inference', 'init_model', 'person_boxes', 'render',
           'to_json']
