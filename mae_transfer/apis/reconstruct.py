"""MAE reconstructions of images: a pretraining config + checkpoint -> masked | reconstruction | original.

    from mae_transfer.apis import init_model, inference
    from mae_transfer.visualization import reconstruction_grid
    model = init_model('configs/pretrain/mae_vit-base-p16_8xb512-amp-coslr-800e_in1k-224x224.py', 'mae.pth')
    result = inference(model, ['a.jpg', 'b.jpg'], mask_ratio=0.75, seed=0)
    reconstruction_grid(result, 'mae.pth').save('reconstruction.png')

Unlike the other tasks, the result is one dict for the whole batch (the model masks and reconstructs a batch,
and the grid draws it as one picture); see `mae_transfer.models.reconstruction.reconstruct`.
"""
import copy
import logging
from pathlib import Path
from typing import Any, Collection, Dict, List, Optional, Sequence, Union

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from torch import nn

from ..datasets.image_folder import load_images
from ..utils.images import UnreadableImageError, log_skipped
from ..models.reconstruction import reconstruct
from ..visualization import reconstruction_grid


def init_model(config: Union[str, Path, Config], checkpoint: Optional[str] = None, device: str = 'cpu',
               allow_partial: bool = True) -> nn.Module:
    """The config's MAEPretrainer in eval mode, its MAE loaded from `checkpoint` (ours or an official file).

    Args:
        config: a pretraining config (architecture, image size, normalisation).
        checkpoint: ours (mmengine, keys prefixed `mae.`) or an official MAE file with its decoder; an
            encoder-only file leaves the decoder untrained (a warning says so). None keeps the initialisation.
        device: 'cpu' or 'cuda[:N]'.
        allow_partial: the other tasks' option, accepted for one signature: an encoder-only file always loads here
            (the encoder is what an export holds; reconstructions warn about the untrained decoder).
    """
    from ..checkpoint import load_weights
    from ..utils.configs import build_model

    cfg = copy.deepcopy(config) if isinstance(config, Config) else Config.fromfile(str(config))
    cfg.model.init_cfg = None  # the checkpoint is loaded below
    model = build_model(cfg)
    if checkpoint is not None and load_weights(model, checkpoint).encoder_only:
        print_log('the checkpoint has no decoder; reconstructions show an untrained decoder', logger='current',
                  level=logging.WARNING)
    model.cfg = cfg
    return model.to(device).eval()


def inference(model: nn.Module, images: Union[Sequence[Union[str, Path]], torch.Tensor],
              mask_ratio: Optional[float] = None, seed: int = 0) -> Dict[str, torch.Tensor]:
    """Mask and reconstruct a batch of images (pixel images in [0, 1], see `reconstruct`).

    Args:
        model: from `init_model` (a MAEPretrainer).
        images: image files (resized and centre-cropped to the model's size), or a normalised batch [N, 3, H, W].
        mask_ratio: fraction of patches removed; the model's training ratio when left out.
        seed: seed of the random mask.
    """
    mean, std = model.pixel_mean, model.pixel_std
    device = next(model.parameters()).device
    if not isinstance(images, torch.Tensor):
        images = load_images(images, model.mae.patch_embed.img_size, mean, std)
    noise = torch.rand(len(images), model.mae.num_patches, generator=torch.Generator().manual_seed(seed))
    ratio = model.mask_ratio if mask_ratio is None else mask_ratio
    return reconstruct(model.mae, images.to(device), ratio, noise.to(device), mean, std)


def infer_images(cfg: Config, checkpoint: str, image_paths: Sequence[str], out_dir: str, device: str = 'cpu',
                 mask_ratio: Optional[float] = None, seed: int = 0, skippable: Collection[str] = (),
                 **options: Any) -> List[Path]:
    """Write one reconstruction picture per image (`<out_dir>/<stem>.png`, one column of the grid).

    Args:
        cfg: the pretraining config.
        checkpoint: ours or an official MAE file (see `init_model`).
        image_paths: image files.
        out_dir: output folder (created).
        device: 'cpu' or 'cuda[:N]'.
        mask_ratio: fraction of patches removed; the model's training ratio when left out.
        seed: seed of the random mask.
        skippable: those of `image_paths` that come from a folder listing: one that cannot be read is logged and
            skipped; any other unreadable file stops with `UnreadableImageError` (it was asked for by name).
        **options: other tasks' options (score_thr, boxes), ignored.
    """
    model = init_model(cfg, checkpoint, device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    skippable = set(map(str, skippable))
    for path in image_paths:
        try:
            result = inference(model, [path], mask_ratio, seed)
        except UnreadableImageError as error:
            if str(path) not in skippable:
                raise
            log_skipped(error)
            continue
        target = out / f'{Path(path).stem}.png'
        reconstruction_grid(result, f'loss {float(result["loss"]):.4f}').save(target)
        written.append(target)
    return written


__all__ = ['infer_images', 'inference', 'init_model']
