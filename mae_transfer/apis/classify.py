"""Classify images with a trained `ViTClassifier`; `infer_images` draws each with its top-5 classes and scores.

    from mae_transfer.apis import init_model, inference
    model = init_model(CONFIG, CHECKPOINT)
    results = inference(model, ['cat.jpg'])   # [(name, score), ...] per image, best first
    infer_images(Config.fromfile(CONFIG), CHECKPOINT, ['cat.jpg'], 'work_dirs/infer')  # pictures

Images are prepared with the config's evaluation transform (timm `create_transform`, resize + centre crop).
Class names come from the checkpoint (mmengine stores the training set's `classes` in `meta.dataset_meta`),
else from the config's evaluation folder, else they are 'class <index>'.
"""
import copy
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config
from PIL import Image

from ..datasets.image_folder import load_rgb
from ..utils.configs import evaluation_dataset
from ..visualization import draw_classification

Prediction = List[Tuple[str, float]]
ImageLike = Union[str, Path, np.ndarray, Image.Image]


def init_model(config: Union[str, Path, Config], checkpoint: Optional[str] = None,
               device: str = 'cpu', allow_partial: bool = False) -> torch.nn.Module:
    """The config's classifier in eval mode with the checkpoint's weights; `model.dataset_meta['classes']` holds
    the class names and `model.cfg` the config.

    Args:
        config: the config the checkpoint was trained with (a path or a Config; not modified).
        checkpoint: a whole classifier: ours (mmengine format), an official fine-tuned MAE file or a timm ViT
            classifier, head included (`mae_transfer.checkpoint.load_weights`); None keeps the initialisation.
        device: 'cpu' or 'cuda[:N]'.
        allow_partial: go on when the checkpoint leaves a part of the model (the head) at its initialisation.
    """
    from ..checkpoint import load_weights, read_checkpoint_file, resolve_checkpoint_path
    from ..utils.configs import build_model
    cfg = copy.deepcopy(config) if isinstance(config, Config) else Config.fromfile(str(config))
    cfg.model.backbone.init_cfg = None  # the checkpoint holds every weight
    model = build_model(cfg)
    loaded: Any = {}
    if checkpoint is not None:
        loaded, hints = read_checkpoint_file(resolve_checkpoint_path(checkpoint, prefer_safetensors=False))
        load_weights(model, loaded, source=str(checkpoint), hints=hints, complete=not allow_partial)
    model.to(device).eval()
    meta = loaded.get('meta')
    classes = list(((meta if isinstance(meta, dict) else {}).get('dataset_meta') or {}).get('classes') or [])
    if not classes:
        dataset = evaluation_dataset(cfg)
        try:
            from ..datasets.class_folder import find_classes, read_class_list
            source = dataset.get('classes') or dataset.get('data_root')
            classes = read_class_list(source) if dataset.get('classes') else find_classes(source)
        except (FileNotFoundError, TypeError, OSError):
            classes = []
    if len(classes) != model.num_classes:
        classes = [f'class {index}' for index in range(model.num_classes)]
    model.cfg = cfg
    model.dataset_meta = dict(classes=classes)
    return model


def _as_rgb(image: ImageLike) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert('RGB')
    if isinstance(image, np.ndarray):
        return Image.fromarray(np.ascontiguousarray(image[..., ::-1]))  # BGR (mmcv's convention) -> RGB
    return load_rgb(Path(image))


@torch.no_grad()
def inference(model: torch.nn.Module, images: Sequence[ImageLike], topk: int = 5) -> List[Prediction]:
    """Top-k (class name, probability) of each image, best first.

    Args:
        model: from `init_model`.
        images: image files, BGR uint8 arrays [H, W, 3] (mmcv's convention) or PIL images.
        topk: how many classes per image.
    """
    from timm.data import create_transform

    from ..datasets.class_folder import DEFAULT_EVAL_TRANSFORM
    classes = model.dataset_meta['classes']
    device = next(model.parameters()).device
    transform = create_transform(**dict(evaluation_dataset(model.cfg).get('transform') or DEFAULT_EVAL_TRANSFORM))
    results = []
    for image in images:
        inputs = transform(_as_rgb(image))[None].to(device)  # [1, 3, H, W]
        scores = model(inputs, mode='tensor').float().softmax(dim=-1)[0]  # [C]
        top = scores.topk(min(topk, scores.numel()))
        results.append([(classes[i], float(p)) for p, i in zip(top.values.tolist(), top.indices.tolist())])
    return results


def render(model: torch.nn.Module, image: np.ndarray, prediction: Prediction, **options: Any) -> np.ndarray:
    """A BGR image [H, W, 3] above a panel of its top classes with score bars (a picture larger than the image)."""
    picture = draw_classification(_as_rgb(image), prediction)
    return np.ascontiguousarray(np.asarray(picture)[..., ::-1])


def to_json(model: torch.nn.Module, prediction: Prediction) -> Dict[str, Any]:
    """The top-k classes, best first: class name and probability."""
    return dict(topk=[{'class': name, 'score': round(score, 4)} for name, score in prediction])


def infer_images(cfg: Config, checkpoint: str, image_paths: Sequence[str], out_dir: str, device: str = 'cpu',
                 **options: Any) -> List[Path]:
    """Write one picture per image into `out_dir` (same stem, `.png`): the image with its top-5 classes.

    Args:
        cfg: the config the checkpoint was trained with.
        checkpoint: a trained `ViTClassifier` checkpoint.
        image_paths: image files.
        out_dir: where the pictures go (created).
        device: 'cpu' or 'cuda[:N]'.
        **options: `topk` (default 5); the other tools' options (score_thr, boxes) do not apply and are ignored.
    """
    from .annotate import write_pictures

    return write_pictures(init_model(cfg, checkpoint, device), image_paths, out_dir,
                          topk=int(options.get('topk', 5)))


PICTURE_SUFFIX = '.png'
__all__ = ['PICTURE_SUFFIX', 'infer_images', 'inference', 'init_model', 'render', 'to_json']
