"""Checkpoints: the one way weights come in and go out of mae_transfer.

    safe_load.py    torch.load with weights_only and an allowlist; clear errors for unsafe or damaged files
    formats.py      format detection and renaming to canonical keys: the only place to add a format
    canonical.py    canonical encoder + `CheckpointMeta` (size, arch name, patch grid and how it was found)
    adapt.py        `load_weights`: fit a checkpoint to a model (pos-embed / rel-pos resize), one `LoadReport`
    files.py        which file to read, reading it, the one atomic write (also under mmengine's saves)
    timm_export.py  a trained classifier as a timm VisionTransformer
    zoo.py          the official MAE weights by name; download.py fetches them (resumable, verified)

Importing this package allowlists the types checkpoints really hold (safe_load.py) and replaces mmengine's
local checkpoint loader; `import mae_transfer` also makes mmengine's checkpoint writes atomic
(`install_atomic_checkpoint_io`). This package reads only `models.arch` and `models.layers.pos_embed` from
`models/`, so that the registered models can load through it.
"""
from .adapt import LoadReport, apply_init_cfg, load_classifier_weights, load_weights
from .canonical import CheckpointMeta, canonicalize, convert_state_dict, normalize_pos_embed
from .download import ChecksumMismatch, DownloadInterrupted, download_file
from .files import (atomic_write, find_latest_checkpoint, install_atomic_checkpoint_io, load_pretrained_encoder,
                    read_checkpoint_file, resolve_checkpoint_path, save_encoder_checkpoint)
from .formats import CHECKPOINT_FORMATS, UnknownCheckpointFormatError, dropped_kind, unwrap_checkpoint
from .safe_load import CorruptCheckpointError, UnsafeCheckpointError, safe_torch_load
from .timm_export import classifier_to_timm, save_timm_classifier
from .zoo import MODEL_ZOO, ZooEntry, fetch_checkpoint, zoo_entry

__all__ = [
    'CHECKPOINT_FORMATS', 'CheckpointMeta', 'ChecksumMismatch', 'CorruptCheckpointError', 'DownloadInterrupted',
    'LoadReport', 'MODEL_ZOO', 'UnknownCheckpointFormatError', 'UnsafeCheckpointError', 'ZooEntry', 'apply_init_cfg',
    'atomic_write',
    'canonicalize', 'classifier_to_timm', 'convert_state_dict', 'download_file', 'dropped_kind', 'fetch_checkpoint',
    'find_latest_checkpoint', 'install_atomic_checkpoint_io', 'load_pretrained_encoder', 'load_weights',
    'load_classifier_weights', 'normalize_pos_embed', 'read_checkpoint_file', 'resolve_checkpoint_path',
    'safe_torch_load', 'save_encoder_checkpoint', 'save_timm_classifier', 'unwrap_checkpoint', 'zoo_entry'
]
