"""An unlabeled image folder for MAE pretraining, searched recursively (an ImageNet `train/` works as is).

Each item is one random view: RandomResizedCrop(scale 0.2-1.0, bicubic) + horizontal flip, as in the official
MAE recipe, returned as a uint8 CHW tensor; normalisation happens batched in the model's data preprocessor.
Grayscale, palette and RGBA images are converted to RGB. A file that cannot be decoded is logged once and
replaced by the next readable one, so a long run never dies on one bad JPEG; a folder with no images at all is
a clear error at construction.
"""
from pathlib import Path
from typing import Dict, List, Sequence, Set, Tuple, Union

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch.utils.data import Dataset
from torchvision.transforms import v2 as T

from ..registry import DATASETS
from ..utils.images import UnreadableImageError, first_readable, load_rgb, log_skipped  # noqa: F401 (re-exported)
from .log_once import claim_run_folder, log_skipped_once

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff', '.ppm', '.pgm', '.gif')


def find_images(root: Union[str, Path], extensions: Sequence[str] = IMAGE_EXTENSIONS) -> List[Path]:
    """Every file under `root` (recursively) whose extension is an image's, case-insensitive, sorted."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f'image folder {root} does not exist or is not a folder')
    suffixes = {ext.lower() for ext in extensions}
    # A symlink that leads nowhere (dangling, or a loop) is kept: reading it fails, and the skip names it
    images = sorted(path for path in root.rglob('*')
                    if path.suffix.lower() in suffixes and (path.is_file() or path.is_symlink()))
    if not images:
        raise FileNotFoundError(f'no images ({", ".join(sorted(suffixes))}) found under {root}')
    return images


# What reading a damaged or non-image file raises; every reader goes through ..utils.images, which raises
# UnreadableImageError (a ValueError) for all of them. Kept for code that caught the decoder's own errors.
UNREADABLE = (UnreadableImageError, OSError, ValueError)


def load_images(paths: Sequence[Union[str, Path]], img_size: Union[int, Tuple[int, int]],
                mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
                std: Sequence[float] = IMAGENET_DEFAULT_STD) -> torch.Tensor:
    """Load images as a normalised batch [N, 3, H, W]: shorter side resized, then centre-cropped to img_size.

    Args:
        paths: image files.
        img_size: output side (int) or (height, width).
        mean: normalisation mean per RGB channel, in [0, 1] units.
        std: normalisation std per RGB channel, in [0, 1] units.
    """
    size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    transform = T.Compose([
        T.PILToTensor(),
        T.Resize(min(size), interpolation=T.InterpolationMode.BICUBIC, antialias=True),
        T.CenterCrop(size),
        T.ToDtype(torch.float32, scale=True),
        T.Normalize(mean, std),
    ])
    return torch.stack([transform(load_rgb(Path(path))) for path in paths])


@DATASETS.register_module()
class UnlabeledImageFolder(Dataset):
    """Images under `data_root`, each returned as one random MAE training view.

    Args:
        data_root: folder searched recursively for images.
        crop_size: output side (int) or (height, width).
        crop_scale: area range of RandomResizedCrop.
        hflip_prob: probability of a horizontal flip.
        extensions: file extensions counted as images.
    """

    def __init__(self, data_root: Union[str, Path], crop_size: Union[int, Tuple[int, int]] = 224,
                 crop_scale: Tuple[float, float] = (0.2, 1.0), hflip_prob: float = 0.5,
                 extensions: Sequence[str] = IMAGE_EXTENSIONS):
        self.data_root = Path(data_root)
        self.paths = find_images(self.data_root, extensions)
        self.transform = T.Compose([
            T.RandomResizedCrop(crop_size, scale=crop_scale, interpolation=T.InterpolationMode.BICUBIC,
                                antialias=True),
            T.RandomHorizontalFlip(hflip_prob),
            T.PILToTensor(),
        ])
        self.unreadable: Set[int] = set()
        claim_run_folder()  # in the main process, before the DataLoader workers: they share the skip log
        self.metainfo = dict(num_images=len(self.paths), data_root=str(self.data_root))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        for offset in range(len(self.paths)):
            candidate = (index + offset) % len(self.paths)
            if candidate in self.unreadable:
                continue
            try:
                image = load_rgb(self.paths[candidate])
            except UnreadableImageError as error:
                self.unreadable.add(candidate)  # per worker process: not read again by this worker
                log_skipped_once(error)  # and logged once for the whole run, whatever the number of workers
                continue
            return dict(inputs=self.transform(image))  # inputs: [3, H, W] uint8
        raise RuntimeError(f'none of the {len(self.paths)} images under {self.data_root} could be read')
