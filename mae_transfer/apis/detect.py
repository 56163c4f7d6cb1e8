"""Detection / instance segmentation inference: a config + checkpoint -> predictions and pictures.

    from mae_transfer.apis.detect import infer_images
    infer_images(Config.fromfile('configs/det/mask-rcnn_vit-tiny-p16_1xb4-lsj-600i_synthetic-128x128.py'), 'work_dirs/det/iter_300.pth',
                 ['a.jpg', 'b.jpg'], 'work_dirs/infer')

The model is built and loaded by mmdet's `init_detector` (class names from the checkpoint's `dataset_meta`, else
from the config's test dataset); images go through the config's test pipeline without its annotation loading,
and mmdet's `DetLocalVisualizer` draws boxes, masks, class names and scores. mmdet is imported inside the
functions, so importing `mae_transfer.apis` stays light.
"""
import copy
import itertools
from pathlib import Path
from typing import Any, List, Sequence, Union

import numpy as np
from mmengine.config import Config
from mmengine.logging import print_log
from torch import nn

_visualizer_ids = itertools.count()


def init_model(cfg: Union[str, Path, Config], checkpoint: str, device: str = 'cpu') -> nn.Module:
    """A detector in eval mode with the trained weights of `checkpoint` (the backbone's pretrained init is skipped).

    Args:
        cfg: the config the checkpoint was trained with (a path or a Config; not modified).
        checkpoint: a checkpoint written by tools/train.py (mmengine format).
        device: 'cpu' or 'cuda[:N]'.
    """
    from mmdet.apis import init_detector

    cfg = Config.fromfile(str(cfg)) if not isinstance(cfg, Config) else copy.deepcopy(cfg)
    if cfg.get('default_scope') != 'mmdet':
        raise ValueError(f'not a detection config (default_scope={cfg.get("default_scope")!r}, expected mmdet)')
    cfg.model.backbone.init_cfg = None  # the checkpoint holds every weight
    return init_detector(cfg, checkpoint, device=device)


def image_pipeline(cfg: Config) -> Any:
    """The config's test pipeline without `LoadAnnotations` (images only), as an mmcv Compose."""
    from mmcv.transforms import Compose
    from mmdet.utils import get_test_pipeline_cfg

    steps = [step for step in copy.deepcopy(get_test_pipeline_cfg(cfg))
             if str(step['type']).split('.')[-1] != 'LoadAnnotations']
    return Compose(steps)


def predict(model: nn.Module, image_paths: Sequence[Union[str, Path]]) -> list:
    """DetDataSample predictions (`pred_instances`: bboxes in image pixels, labels, scores, masks) per image."""
    from mmdet.apis import inference_detector

    return inference_detector(model, [str(path) for path in image_paths], test_pipeline=image_pipeline(model.cfg))


def draw_prediction(image_rgb: np.ndarray, prediction: Any, classes: Sequence[str], out_file: Union[str, Path],
                    score_thr: float = 0.3) -> Path:
    """Draw the instances scoring at least `score_thr` (box, mask, 'class: score') and write `out_file`."""
    from mmdet.visualization import DetLocalVisualizer

    visualizer = DetLocalVisualizer(name=f'mae_transfer_detect_{next(_visualizer_ids)}')
    visualizer.dataset_meta = dict(classes=tuple(classes))
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    visualizer.add_datasample(out_file.stem, image_rgb, data_sample=prediction, draw_gt=False, show=False,
                              out_file=str(out_file), pred_score_thr=score_thr)
    return out_file


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
    import mmcv

    ignored = {key: value for key, value in options.items() if value is not None}
    if ignored:
        print_log(f'detection inference ignores the options {sorted(ignored)}', logger='current')
    model = init_model(cfg, checkpoint, device=device)
    classes = model.dataset_meta['classes']
    written = []
    for path, prediction in zip(image_paths, predict(model, image_paths)):
        image = mmcv.imread(str(path), channel_order='rgb')  # [H, W, 3] uint8
        written.append(draw_prediction(image, prediction, classes, Path(out_dir) / f'{Path(path).stem}.jpg',
                                       score_thr=score_thr))
    return written


__all__ = ['draw_prediction', 'image_pipeline', 'infer_images', 'init_model', 'predict']
