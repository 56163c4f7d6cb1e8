"""Semantic segmentation inference: load an mmseg segmentor, predict label maps, draw overlays with a legend.

    from mae_transfer.apis import init_model, inference
    from mae_transfer.visualization import draw_segmentation
    model = init_model('configs/seg/upernet_vit-base-p16_8xb2-160ki_ade20k-512x512.py', 'iter_160000.pth')
    label_maps = inference(model, ['street.jpg'], mode='slide')   # [H, W] class indices, input size
    draw_segmentation(image, label_maps[0], model.dataset_meta['classes'], model.dataset_meta['palette'])

`tools/infer.py` calls `infer_images` for every config under default scope 'mmseg'. mmseg is imported inside
the functions, so `import mae_transfer.apis` stays light.
"""
import copy
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
from mmengine.config import Config
from mmengine.logging import print_log
from torch import nn

from ..utils.configs import sliding_window
from ..visualization import draw_segmentation, random_palette

ImageLike = Union[str, Path, np.ndarray]
MODES = ('whole', 'slide')


def _dataset_meta(cfg: Config, checkpoint_meta: Optional[dict], num_classes: int) -> Dict[str, Any]:
    """Class names and palette: the checkpoint's dataset_meta, else the config's test set, else generated."""
    meta = dict(checkpoint_meta or {})
    if not meta.get('classes'):
        dataset = cfg.get('test_dataloader', {}).get('dataset', {})
        meta = dict(dataset.get('metainfo') or {})
        if not meta.get('classes'):
            from mmseg.registry import DATASETS
            dataset_cls = DATASETS.get(str(dataset.get('type', '')).split('.')[-1]) if dataset else None
            meta = dict(getattr(dataset_cls, 'METAINFO', None) or {})
    classes = list(meta.get('classes') or [f'class {i}' for i in range(num_classes)])
    palette = meta.get('palette')
    if not palette or len(palette) < len(classes):
        palette = random_palette(len(classes))
    return dict(classes=classes, palette=[list(map(int, colour)) for colour in palette])


def init_model(config: Union[str, Path, Config], checkpoint: Optional[str] = None, device: str = 'cpu',
               mode: Optional[str] = None, allow_partial: bool = False) -> nn.Module:
    """Build a config's segmentor in eval mode and load a trained checkpoint (weights only, safely).

    Args:
        config: config file or Config (under default scope 'mmseg').
        checkpoint: the whole trained model (tools/train.py output, or mmseg's MAE / BEiT UperNet release),
            through `mae_transfer.checkpoint.load_weights`; None keeps the initialisation (tests).
        device: 'cpu' or 'cuda[:N]'.
        mode: 'whole' or 'slide' to override the config's `model.test_cfg.mode`.
        allow_partial: go on when the checkpoint leaves a part of the model (heads) at its initialisation.

    Returns:
        the model, with `.cfg` (the config used) and `.dataset_meta` (classes, palette).
    """
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS

    from ..checkpoint import load_weights, read_checkpoint_file, resolve_checkpoint_path

    cfg = copy.deepcopy(config) if isinstance(config, Config) else Config.fromfile(str(config))
    cfg.model.pretrained = None
    cfg.model.train_cfg = None
    if 'backbone' in cfg.model:
        cfg.model.backbone.init_cfg = None  # the trained checkpoint replaces every weight
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmseg')):
        model = MODELS.build(cfg.model)
    checkpoint_meta = None
    if checkpoint is not None:
        loaded, hints = read_checkpoint_file(resolve_checkpoint_path(checkpoint, prefer_safetensors=False))
        load_weights(model, loaded, source=str(checkpoint), hints=hints, complete=not allow_partial)
        checkpoint_meta = (loaded.get('meta') or {}).get('dataset_meta')
    model.cfg = cfg
    model.dataset_meta = _dataset_meta(cfg, checkpoint_meta, model.decode_head.num_classes)
    if mode is not None:
        set_inference_mode(model, mode)
    return model.to(device).eval()


def set_inference_mode(model: nn.Module, mode: str) -> None:
    """Switch a segmentor between whole-image and sliding-window inference."""
    if mode not in MODES:
        raise ValueError(f'unknown inference mode {mode!r}; expected one of {MODES}')
    model.test_cfg = copy.deepcopy(model.test_cfg) if model.test_cfg else {}
    model.test_cfg['mode'] = mode
    if mode == 'slide':
        crop, stride = sliding_window(model.cfg)
        model.test_cfg['crop_size'], model.test_cfg['stride'] = crop, stride


def _test_pipeline(cfg: Config, from_array: bool):
    """The config's test pipeline without annotation loading (the same resize as in evaluation)."""
    from mmcv.transforms import Compose
    from mmengine.registry import DefaultScope

    pipeline = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
    pipeline = [step for step in pipeline if step['type'] != 'LoadAnnotations']
    if from_array:
        pipeline[0] = dict(type='LoadImageFromNDArray')
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmseg')):
        return Compose(pipeline)


def inference(model: nn.Module, images: Sequence[ImageLike], mode: Optional[str] = None) -> List[np.ndarray]:
    """Predict one label map per image, at the image's own size.

    Args:
        model: from `init_model`.
        images: file paths, or BGR uint8 arrays [H, W, 3] (mmcv's convention).
        mode: 'whole' or 'slide' for this call; the model's current mode when left out.

    Returns:
        int64 arrays [H, W] of class indices into `model.dataset_meta['classes']`.
    """
    import torch
    from mmengine.dataset import pseudo_collate

    previous = copy.deepcopy(model.test_cfg)
    if mode is not None:
        set_inference_mode(model, mode)
    label_maps, pipelines = [], {}
    try:
        for image in images:  # one at a time: after the keep-ratio resize, sizes differ
            from_array = isinstance(image, np.ndarray)
            if from_array not in pipelines:
                pipelines[from_array] = _test_pipeline(model.cfg, from_array)
            data = pipelines[from_array](dict(img=image) if from_array else dict(img_path=str(image)))
            with torch.no_grad():
                sample = model.test_step(pseudo_collate([data]))[0]
            label_maps.append(sample.pred_sem_seg.data[0].cpu().numpy().astype(np.int64))  # [H, W]
    finally:
        model.test_cfg = previous
    return label_maps


def render(model: nn.Module, image: np.ndarray, label_map: np.ndarray, legend: bool = True, alpha: float = 0.5,
           **options: Any) -> np.ndarray:
    """Class colours blended over a BGR image [H, W, 3]; with `legend` a panel of the classes found is added on the
    right (pictures), without it the result keeps the image's size (video frames). Returns BGR uint8."""
    meta = model.dataset_meta
    picture = draw_segmentation(np.ascontiguousarray(image[..., ::-1]), label_map, meta['classes'], meta['palette'],
                                alpha=alpha, with_legend=legend)
    return np.ascontiguousarray(np.asarray(picture)[..., ::-1])


def to_json(model: nn.Module, label_map: np.ndarray) -> Dict[str, Any]:
    """One segment per class found, largest first: label, class name, share of the pixels and the class's mask as
    COCO run-length encoding (pycocotools `mask.decode` reads it back)."""
    from pycocotools import mask as mask_utils

    classes = model.dataset_meta['classes']
    labels, counts = np.unique(label_map, return_counts=True)
    segments = []
    for label, count in sorted(zip(labels.tolist(), counts.tolist()), key=lambda item: -item[1]):
        rle = mask_utils.encode(np.asfortranarray((label_map == label).astype(np.uint8)))
        segments.append(dict(label=int(label), share=round(count / label_map.size, 4),
                             mask=dict(size=[int(v) for v in rle['size']], counts=rle['counts'].decode('ascii')),
                             **{'class': classes[label] if 0 <= label < len(classes) else str(label)}))
    return dict(segments=segments)


def infer_images(cfg: Config, checkpoint: str, image_paths: Sequence[Union[str, Path]], out_dir: Union[str, Path],
                 device: str = 'cpu', mode: Optional[str] = None, alpha: float = 0.5,
                 **options: Any) -> List[Path]:
    """Segment image files and write `<out_dir>/<stem>.png`: colour overlay + legend (tools/infer.py).

    Args:
        cfg: the config the checkpoint was trained with.
        checkpoint: trained weights.
        image_paths: image files of any size.
        out_dir: created if missing.
        device: 'cpu' or 'cuda[:N]'.
        mode: 'whole' or 'slide'; the config's test mode when left out.
        alpha: weight of the class colours in the overlay.
        options: other tasks' options (score_thr, boxes); they do not apply to segmentation.

    Returns:
        the written picture paths, in input order.
    """
    from .annotate import write_pictures

    unused = sorted(key for key, value in options.items() if value is not None)
    if unused:
        print_log(f'segmentation ignores {unused}', logger='current')
    model = init_model(cfg, checkpoint, device=device, mode=mode)
    return write_pictures(model, image_paths, out_dir, alpha=alpha)


PICTURE_SUFFIX = '.png'
__all__ = ['PICTURE_SUFFIX', 'infer_images', 'inference', 'init_model', 'render', 'set_inference_mode', 'to_json']
