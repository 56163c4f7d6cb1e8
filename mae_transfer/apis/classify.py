"""Classify image files with a trained `ViTClassifier` and draw each image with its top-5 classes and scores.

    from mmengine.config import Config
    from mae_transfer.apis.classify import classify_images, infer_images
    results = classify_images(Config.fromfile(CONFIG), CHECKPOINT, ['cat.jpg'])   # [(name, score), ...] per image
    infer_images(Config.fromfile(CONFIG), CHECKPOINT, ['cat.jpg'], 'work_dirs/infer')  # pictures

Images are prepared with the config's evaluation transform (timm `create_transform`, resize + centre crop).
Class names come from the checkpoint (mmengine stores the training set's `classes` in `meta.dataset_meta`),
else from the config's evaluation folder, else they are 'class <index>'.
"""
import copy
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.config import Config
from PIL import Image, ImageDraw

from ..datasets.image_folder import load_rgb

Prediction = List[Tuple[str, float]]


def _eval_dataset_cfg(cfg: Config) -> dict:
    for key in ('test_dataloader', 'val_dataloader'):
        loader = cfg.get(key)
        if loader and loader.get('dataset'):
            return loader['dataset']
    return {}


def load_classifier(cfg: Config, checkpoint: str, device: str = 'cpu') -> Tuple[torch.nn.Module, List[str]]:
    """(model in eval mode with the checkpoint's weights, class names)."""
    from mmengine.runner import load_checkpoint

    from ..utils.configs import build_model
    cfg = copy.deepcopy(cfg)
    cfg.model.backbone.init_cfg = None  # the checkpoint holds every weight
    model = build_model(cfg)
    loaded = load_checkpoint(model, checkpoint, map_location='cpu', strict=True, logger='silent')
    model.to(device).eval()
    classes = list(((loaded.get('meta') or {}).get('dataset_meta') or {}).get('classes') or [])
    if not classes:
        dataset = _eval_dataset_cfg(cfg)
        try:
            from ..datasets.class_folder import find_classes, read_class_list
            source = dataset.get('classes') or dataset.get('data_root')
            classes = read_class_list(source) if dataset.get('classes') else find_classes(source)
        except (FileNotFoundError, TypeError, OSError):
            classes = []
    if len(classes) != model.num_classes:
        classes = [f'class {index}' for index in range(model.num_classes)]
    return model, classes


@torch.no_grad()
def classify_images(cfg: Config, checkpoint: str, image_paths: Sequence[Union[str, Path]], device: str = 'cpu',
                    topk: int = 5, model: Optional[torch.nn.Module] = None,
                    classes: Optional[Sequence[str]] = None) -> List[Prediction]:
    """Top-k (class name, probability) of each image, best first."""
    from timm.data import create_transform

    from ..datasets.class_folder import DEFAULT_EVAL_TRANSFORM
    if model is None:
        model, classes = load_classifier(cfg, checkpoint, device)
    transform = create_transform(**dict(_eval_dataset_cfg(cfg).get('transform') or DEFAULT_EVAL_TRANSFORM))
    results = []
    for path in image_paths:
        inputs = transform(load_rgb(Path(path)))[None].to(device)  # [1, 3, H, W]
        scores = model(inputs, mode='tensor').float().softmax(dim=-1)[0]  # [C]
        top = scores.topk(min(topk, scores.numel()))
        results.append([(classes[i], float(p)) for p, i in zip(top.values.tolist(), top.indices.tolist())])
    return results


def draw_prediction(image: Image.Image, prediction: Prediction, max_side: int = 384) -> Image.Image:
    """The image (longer side at most `max_side`) above a panel listing the classes with score bars."""
    scale = min(max_side / max(image.size), max(1.0, 256 / max(image.size)))  # small images enlarged to 256
    image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BICUBIC)
    width = max(image.width, 260)
    line = 18
    canvas = Image.new('RGB', (width, image.height + line * len(prediction) + 8), 'white')
    canvas.paste(image, ((width - image.width) // 2, 0))
    draw = ImageDraw.Draw(canvas)
    bar_left, bar_width = width // 2, width // 2 - 8
    for rank, (name, score) in enumerate(prediction):
        top = image.height + 4 + rank * line
        draw.rectangle([bar_left, top + 3, bar_left + max(1, round(bar_width * score)), top + line - 3],
                       fill=(70, 130, 180) if rank else (220, 80, 40))
        draw.text((4, top + 2), f'{rank + 1}. {name[:28]}  {100 * score:.1f}%', fill='black')
    return canvas


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
    topk = int(options.get('topk', 5))
    model, classes = load_classifier(cfg, checkpoint, device)
    predictions = classify_images(cfg, checkpoint, image_paths, device=device, topk=topk, model=model,
                                  classes=classes)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path, prediction in zip(image_paths, predictions):
        target = out / f'{Path(path).stem}.png'
        draw_prediction(load_rgb(Path(path)), prediction).save(target)
        written.append(target)
    return written


__all__ = ['classify_images', 'draw_prediction', 'infer_images', 'load_classifier']
