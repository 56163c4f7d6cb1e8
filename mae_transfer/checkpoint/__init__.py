"""Checkpoints: the one way weights come in and go out of mae_transfer.

    safe_load.py    torch.load with weights_only and an allowlist; clear errors for unsafe or damaged files
    formats/        one file per format family, each one `CheckpointFormat` record (how to recognise, read and
                    rename it to our whole-model layout): the only place to add a format
    canonical.py    canonical encoder + `CheckpointMeta` (size, arch name, patch grid and how it was found)
    adapt.py        `load_weights`: THE load of any checkpoint into any model of ours, whole (encoder fitted:
                    pos-embed / rel-pos resize; neck and heads), one `LoadReport`
    mmengine_bridge.py  the one place mmengine functions are replaced: `load_from`, `load_checkpoint` and
                    `init_cfg` Pretrained load through `load_weights`; safe reads, atomic writes
    files.py        which file to read, reading it, the one atomic write (also under mmengine's saves)
    timm_export.py  a trained classifier as a timm VisionTransformer
    zoo.py          the official MAE weights by name; download.py fetches them (resumable, verified)

Importing this package allowlists the types checkpoints really hold (safe_load.py); `import mae_transfer`
installs `mmengine_bridge`. This package reads only `models.arch` and the tensor code of `models.layers` from
`models/`, and `models/` imports nothing from it: the registered models load through mmengine's entries, which
the bridge routes here.
"""
from . import mmengine_bridge
from .adapt import CheckpointMismatchError, LoadReport, PartialCheckpointError, find_vit, load_weights
from .canonical import CheckpointMeta, canonicalize, convert_state_dict, normalize_pos_embed
from .download import ChecksumMismatch, DownloadInterrupted, download_file
from .files import (atomic_write, find_latest_checkpoint, load_pretrained_encoder,
                    read_checkpoint_file, resolve_checkpoint_path, save_encoder_checkpoint)
from .formats import CHECKPOINT_FORMATS, UnknownCheckpointFormatError, dropped_kind, unwrap_checkpoint
from .mmengine_bridge import evaluation_load
from .safe_load import CorruptCheckpointError, UnsafeCheckpointError, safe_torch_load
from .timm_export import classifier_to_timm, save_timm_classifier
from .zoo import MODEL_ZOO, ZooEntry, fetch_checkpoint, zoo_entry

__all__ = [
    'CHECKPOINT_FORMATS', 'CheckpointMeta', 'CheckpointMismatchError', 'ChecksumMismatch', 'CorruptCheckpointError', 'DownloadInterrupted',
    'LoadReport', 'MODEL_ZOO', 'PartialCheckpointError', 'UnknownCheckpointFormatError', 'UnsafeCheckpointError',
    'ZooEntry', 'atomic_write', 'evaluation_load', 'find_vit', 'mmengine_bridge',
    'canonicalize', 'classifier_to_timm', 'convert_state_dict', 'download_file', 'dropped_kind', 'fetch_checkpoint',
    'find_latest_checkpoint', 'load_pretrained_encoder', 'load_weights', 'normalize_pos_embed', 'read_checkpoint_file',
    'resolve_checkpoint_path',
    'safe_torch_load', 'save_encoder_checkpoint', 'save_timm_classifier', 'unwrap_checkpoint', 'zoo_entry'
]
