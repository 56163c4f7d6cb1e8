"""The official MAE weights by name, and fetching one: download (resumable) + conversion to our format.

    mae-transfer download mae_pretrain_vit_base      # -> checkpoints/mae_pretrain_vit_base.pth
                                                                   #  + checkpoints/mae_pretrain_vit_base.safetensors

`*.pth` is the file as published; `*.safetensors` beside it is the canonical encoder (what
`load_pretrained_encoder` reads first). The `visualize` files also carry the decoder, trained without
`norm_pix_loss`, so their reconstructions are pictures; only the `.pth` keeps that decoder.

No SHA-256 is published for these files, so none is recorded (None): the size and a successful conversion
are what is checked. Pass one (`--sha256`) to verify a file against a digest you trust.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

from ..models.arch import get_arch
from .canonical import CheckpointMeta
from .download import download_file
from .files import load_pretrained_encoder, save_encoder_checkpoint

MAE_PRETRAIN_URL = 'https://dl.fbaipublicfiles.com/mae/pretrain/{name}.pth'
MAE_VISUALIZE_URL = 'https://dl.fbaipublicfiles.com/mae/visualize/{name}.pth'


@dataclass(frozen=True)
class ZooEntry:
    """One published checkpoint.

    Attributes:
        name: the name it is published under (also our file name, without suffix).
        url: where it is published.
        arch: encoder size, a name of `mae_transfer.models.arch.ARCHS` (as in `CheckpointMeta.arch`).
        patch_size: patch side of the encoder (the arch table's).
        purpose: what the file is for.
        sha256: hex digest, None while no trusted digest is known.
    """
    name: str
    url: str
    arch: str
    patch_size: int
    purpose: str
    sha256: Optional[str] = None

    @property
    def filename(self) -> str:
        return self.name + '.pth'


def _entries() -> Dict[str, ZooEntry]:
    pretrain = ('MAE-pretrained encoder (ImageNet-1k, 1600 epochs, no decoder): the starting point for '
                'fine-tuning, detection, segmentation and pose')
    visualize = ('encoder + decoder trained without norm_pix_loss (pixel targets), for reconstruction '
                 'pictures; the encoder also transfers')
    entries = {}
    for arch in ('base', 'large', 'huge'):
        patch = get_arch(arch).patch_size
        for kind, url, purpose in (('pretrain', MAE_PRETRAIN_URL, pretrain),
                                   ('visualize', MAE_VISUALIZE_URL, visualize)):
            name = f'mae_{kind}_vit_{arch}'
            entries[name] = ZooEntry(name=name, url=url.format(name=name), arch=arch, patch_size=patch,
                                     purpose=purpose)
    name = 'mae_visualize_vit_large_ganloss'
    entries[name] = ZooEntry(name=name, url=MAE_VISUALIZE_URL.format(name=name), arch='large',
                             patch_size=get_arch('large').patch_size,
                             purpose='like mae_visualize_vit_large, trained with an extra GAN loss (more '
                                     'realistic reconstruction pictures)')
    return entries


MODEL_ZOO: Dict[str, ZooEntry] = _entries()


def zoo_entry(name: str) -> ZooEntry:
    """The entry named `name`, with the list of names in the error when there is none.

    Args:
        name: e.g. 'mae_pretrain_vit_base'.
    """
    if name not in MODEL_ZOO:
        raise KeyError(f'unknown checkpoint {name!r}; known: {", ".join(sorted(MODEL_ZOO))}')
    return MODEL_ZOO[name]


def fetch_checkpoint(name: str, dest_dir: Union[str, Path] = 'checkpoints', url_override: Optional[str] = None,
                     sha256: Optional[str] = None, convert: bool = True, progress: bool = True,
                     retries: int = 3) -> Tuple[Path, Optional[Path], Optional[CheckpointMeta]]:
    """Download a zoo checkpoint into `dest_dir` (resuming a broken download) and convert it beside itself.

    Args:
        name: a key of `MODEL_ZOO`.
        dest_dir: folder for the files.
        url_override: download from here instead (a mirror, or a local server in tests).
        sha256: expected digest; the entry's recorded one when left out.
        convert: also write `<name>.safetensors` with the canonical encoder.
        progress: draw a progress bar.
        retries: automatic resumes after an interrupted transfer.

    Returns:
        (downloaded file, converted file or None, its CheckpointMeta or None).
    """
    entry = zoo_entry(name)
    raw = download_file(url_override or entry.url, Path(dest_dir) / entry.filename,
                        sha256=sha256 or entry.sha256, retries=retries, progress=progress)
    if not convert:
        return raw, None, None
    # read the .pth itself: a stale .safetensors beside it must not stand in for the fresh download
    state_dict, meta = load_pretrained_encoder(raw, prefer_safetensors=False)
    converted = save_encoder_checkpoint(state_dict, meta, raw.with_suffix('.safetensors'))
    return raw, converted, meta


__all__ = ['MODEL_ZOO', 'ZooEntry', 'fetch_checkpoint', 'zoo_entry']
