"""One `init_model` and one `inference` for every task; the task is read from the config.

    from mae_transfer.apis import init_model, inference
    model = init_model(CONFIG, CHECKPOINT, device='cpu')   # det, seg, pose, cls or pretrain config
    results = inference(model, ['a.jpg', 'b.jpg'])         # one result per image

What `inference` returns per image: det, an mmdet `DetDataSample`; seg, a label map [H, W] at the image's size;
pose, a list of person dicts (keypoints [K, 2], keypoint_scores [K], bbox, score); cls, the top-k (class name,
probability) pairs. A pretraining model masks and reconstructs the images as one batch and returns one dict
(masked / reconstruction / original images), which `reconstruction_grid` draws as one picture. Each task's
module (`TASK_MODULES`) has the same three functions: `init_model`, `inference` and `infer_images` (pictures
into a folder); det, seg, pose and cls also `render` (a result drawn on the image) and `to_json` (a result as
JSON), which `annotate` uses for images, folders and videos (tools/infer.py). Drawing lives in
`mae_transfer.visualization`.
"""
import importlib
from pathlib import Path
from types import ModuleType
from typing import Any, Optional, Union

import numpy as np
from mmengine.config import Config
from torch import nn

from ..utils.configs import config_task

TASK_MODULES = {
    'det': 'mae_transfer.apis.detect',
    'seg': 'mae_transfer.apis.segment',
    'pose': 'mae_transfer.apis.pose',
    'cls': 'mae_transfer.apis.classify',
    'pretrain': 'mae_transfer.apis.reconstruct',
}


def task_module(cfg: Config) -> ModuleType:
    """The `mae_transfer.apis` module of a config's task."""
    return importlib.import_module(TASK_MODULES[config_task(cfg)])


def init_model(config: Union[str, Path, Config], checkpoint: Optional[str] = None, device: str = 'cpu',
               **options: Any) -> nn.Module:
    """The config's model in eval mode on `device`, with the weights of `checkpoint`; `model.cfg` is the config.

    Args:
        config: a config file or Config of any task (not modified).
        checkpoint: trained weights (tools/train.py output; for pretraining also official MAE files); None keeps
            the initialisation.
        device: 'cpu' or 'cuda[:N]'.
        **options: options of the task's own `init_model` (segmentation: mode='whole' / 'slide').
    """
    cfg = config if isinstance(config, Config) else Config.fromfile(str(config))
    return task_module(cfg).init_model(cfg, checkpoint, device=device, **options)


def inference(model: nn.Module, images: Any, **options: Any) -> Any:
    """Predict on images with a model from `init_model`.

    Args:
        model: from `init_model`.
        images: a list of image files or BGR uint8 arrays [H, W, 3] (one file or array is taken as a list of one).
        **options: the task's own options: det none; seg mode; pose boxes, box_scores (one entry per image),
            batch_size; cls topk; pretrain mask_ratio, seed.

    Returns:
        one result per image (see the module docstring); for pretraining one dict for the batch.
    """
    if isinstance(images, (str, Path, np.ndarray)):
        images = [images]
    return task_module(model.cfg).inference(model, images, **options)


__all__ = ['TASK_MODULES', 'inference', 'init_model', 'task_module']
