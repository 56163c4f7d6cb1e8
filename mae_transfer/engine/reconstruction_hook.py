"""Save a reconstruction picture every N iterations of MAE pretraining (and at the end).

The same images and the same mask are used every time, so successive pictures show the model learning.
"""
import os.path as osp
from pathlib import Path
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.dist import master_only

from ..registry import HOOKS
from .distributed import unwrap_model
from .sharding import full_parameters


@HOOKS.register_module()
class ReconstructionHook(Hook):
    """Write `<work_dir>/reconstructions/iter_<N>.png`: masked | reconstruction + visible | original.

    Args:
        interval: save every `interval` training iterations, and after the last one.
        num_images: how many images (columns), taken from the start of the training set's file list.
        mask_ratio: ratio used for the pictures (the model's training ratio by default: 0.75).
        seed: seed of the fixed mask noise.
        out_dir: folder name inside the work dir.
    """

    priority = 'LOW'

    def __init__(self, interval: int = 500, num_images: int = 4, mask_ratio: float = 0.75, seed: int = 0,
                 out_dir: str = 'reconstructions'):
        self.interval = interval
        self.num_images = num_images
        self.mask_ratio = mask_ratio
        self.seed = seed
        self.out_dir = out_dir
        self.images: Optional[torch.Tensor] = None
        self.noise: Optional[torch.Tensor] = None

    def before_train(self, runner) -> None:
        from ..datasets.image_folder import first_readable, load_images
        pretrainer = unwrap_model(runner.model)
        dataset = runner.train_dataloader.dataset
        # the first readable images: a user's folder may start with a damaged file, which the dataset skips too
        paths = first_readable(getattr(dataset, 'paths', []), self.num_images)
        if not paths:
            runner.logger.warning('ReconstructionHook: the training set lists no readable image; no pictures')
            return
        self.images = load_images(paths, pretrainer.mae.patch_embed.img_size, pretrainer.pixel_mean,
                                  pretrainer.pixel_std)
        generator = torch.Generator().manual_seed(self.seed)
        self.noise = torch.rand(len(paths), pretrainer.mae.num_patches, generator=generator)

    def after_train_iter(self, runner, batch_idx: int, data_batch: Optional[dict] = None, outputs=None) -> None:
        if self.images is None:
            return
        if self.every_n_train_iters(runner, self.interval) or self.is_last_train_iter(runner):
            with full_parameters(runner.model):  # every rank enters (FSDP gathers); rank 0 draws
                self.save(runner)

    @master_only  # one picture per step, not one per process
    def save(self, runner) -> Path:
        from ..models.reconstruction import reconstruct
        from ..visualization import reconstruction_grid
        pretrainer = unwrap_model(runner.model)
        device = next(pretrainer.parameters()).device
        result = reconstruct(pretrainer.mae, self.images.to(device), self.mask_ratio, self.noise.to(device),
                             mean=pretrainer.pixel_mean, std=pretrainer.pixel_std)
        out_dir = Path(runner.work_dir) / self.out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f'iter_{runner.iter + 1}.png'
        title = f'iter {runner.iter + 1}, mask {self.mask_ratio:.2f}, loss {float(result["loss"]):.4f}'
        reconstruction_grid(result, title).save(path)
        runner.logger.info(f'reconstruction picture: {osp.relpath(path)}')
        return path
