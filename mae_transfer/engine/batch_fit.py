"""Pretraining on a folder smaller than the batch: shrink the batch (and the lr with it) instead of failing.

A recipe's batch (the tiny twin's 32, ViT-B's 512 per GPU) with `drop_last=True` gives an epoch of zero
iterations on a folder of 10 images, and mmengine stops with "epoch_length ... got 0". A user who points
`mae-transfer pretrain --images` at a small folder wants it trained: the per-process batch becomes what the
folder holds, and the lr follows the MAE rule the configs are written with (lr = blr x batch / 256: linear in the
batch), either through `auto_scale_lr` when the config enables it or here. One line says what changed. An empty
folder is a one-line error.
"""
from typing import Optional

from mmengine.config import Config
from mmengine.logging import print_log

from ..datasets.image_folder import IMAGE_EXTENSIONS, find_images

FOLDER_DATASETS = ('UnlabeledImageFolder',)  # datasets that are a folder of images, counted before building


def fit_batch_to_image_folder(cfg: Config, world_size: int = 1) -> Optional[int]:
    """Shrink `train_dataloader.batch_size` to the images of an image-folder dataset, per process.

    Args:
        cfg: the training config (changed in place).
        world_size: processes that share the folder.

    Returns:
        the new batch size, or None when nothing changed (another dataset, or a folder large enough).

    Raises:
        FileNotFoundError: the folder does not exist or holds no image (one line, a user error).
    """
    loader = cfg.get('train_dataloader') or {}
    dataset = loader.get('dataset') or {}
    if str(dataset.get('type', '')).split('.')[-1] not in FOLDER_DATASETS or not dataset.get('data_root'):
        return None
    folder = dataset['data_root']
    # a missing or empty folder: find_images's own one-line FileNotFoundError, before anything is built
    count = len(find_images(folder, dataset.get('extensions', IMAGE_EXTENSIONS)))
    batch = int(loader['batch_size'])
    per_process = max(1, count // max(1, world_size))
    if per_process >= batch:
        return None
    loader['batch_size'] = per_process
    auto_scale = cfg.get('auto_scale_lr') or {}
    if auto_scale.get('enable', False):
        lr_note = 'the lr follows through auto_scale_lr'
    else:  # the configs' lr is linear in the batch (MAE: blr x batch / 256)
        optimizer = cfg.optim_wrapper.optimizer
        optimizer.lr = optimizer.lr * per_process / batch
        lr_note = f'lr scaled by {per_process}/{batch} to {optimizer.lr:.3e}'
    images = f'{count} image' + ('s' if count != 1 else '')
    print_log(f'{folder} holds {images}, fewer than the batch of {batch} per process: batch {per_process}, '
              f'{lr_note}', logger='current')
    return per_process


__all__ = ['fit_batch_to_image_folder']
