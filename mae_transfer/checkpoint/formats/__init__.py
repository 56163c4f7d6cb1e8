"""Checkpoint formats: one file per format family, each declaring in one `CheckpointFormat` record how to
recognise its files, how to read them (when torch / safetensors cannot) and how their keys map onto ours.

    canonical.py       official MAE, timm, this project (labels official_mae, mae_transfer, timm)
    mmpretrain.py      mmpretrain VisionTransformer / MAEViT, mmseg ViT
    huggingface.py     transformers ViTMAEModel, ViTModel, ViTForImageClassification, ... (+ config.json hints)
    mmseg_beit.py      mmseg MAE / BEiT backbones (layer scale, relative position bias)
    vitpose.py         ViTPose's released models (mmpose 0.x)
    mmpose_vitpose.py  mmpose 1.x ViTPose
    detectron2.py      detectron2 ViTDet model zoo `.pkl` files (their numpy-only reader lives there)
    mmdet_vitdet.py    mmdet's projects/ViTDet Mask R-CNN

Recognising a file: each record names its `marker`, the key suffix of its patch-embedding weight; whatever
stands before it in a key is the encoder's prefix ('' official / timm / HF, 'mae.' our pretrainer, 'backbone.'
mmengine models, 'vit.' HF wrappers). Formats that share a marker are told apart by `matches`, and where more
than one matches, the highest `priority` wins; a tie is an error, never settled by the order of registration.

Adding a format is one new file that ends with `register_format(CheckpointFormat(...))` and is imported at the
bottom of this file (or by the user's own code), plus its test (docs/EXTENDING.md shows both). The rest of the
package (canonical metadata, loading into models, export) works on canonical names only.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import torch

from .common import (BLOCK_KEY, CANONICAL_BLOCK_KEYS, CANONICAL_MARKER, CANONICAL_TOP_KEYS, DECODER_NAMES,
                     HEAD_NAMES, HUGGINGFACE_MARKER, MMPRETRAIN_MARKER, EncoderKeys, UnknownCheckpointFormatError,
                     dropped_kind, encoder_prefixes, leading_kind, refuse_unplaced, rename_prefixes,
                     split_canonical, under_prefix, unwrap_checkpoint, vitpose_grid, with_zero_cls_token)

Parts = Dict[str, torch.Tensor]


def _every_file(keys: Sequence[str], prefix: str) -> bool:
    return True


def _unchanged(parts: Parts) -> Parts:
    return parts


@dataclass(frozen=True)
class CheckpointFormat:
    """One format family: how its files are recognised, read and renamed to our keys.

    Attributes:
        name: the family ('canonical', 'mmpretrain', 'huggingface', ...); unique.
        marker: the key suffix of the patch-embedding weight, which locates the encoder's prefix.
        rename: (whole state dict, encoder prefix) -> `EncoderKeys`: the canonical encoder, a canonical MAE
            decoder, and the original names of everything left out of the encoder.
        matches: (all keys, encoder prefix) -> whether a file found by `marker` is this format; tells formats
            with one marker apart (best written so that no two of them match one file).
        priority: among the formats whose marker and `matches` fit, the highest wins.
        labels: the names of this family's files for `--format` and `CheckpointMeta.source_format`; (name,)
            when left out.
        label: (container, encoder prefix, checkpoint, ours) -> one of `labels`, from how the file is wrapped;
            None: the first label.
        whole_model: the tensors of the file that are neither encoder nor MAE decoder (necks, heads), named as
            in the file relative to its top -> the same in our whole-model layout (the ViT at `backbone.`:
            `neck.*`, `rpn_head.*`, `roi_head.*`, `decode_head.*`, `head.*`, `fc_norm.*`); leave out what has no
            counterpart (it stays among the dropped keys). Return the tensors themselves, not copies, so that
            each keeps its original name in `Canonical.parts_from`.
        read: path -> loaded checkpoint, for files torch.load / safetensors cannot read; with `suffixes`.
        suffixes: the file suffixes `read` is for ('.pkl').
        without_cls_row: the labels whose pos_embed may lack the cls row (timm `no_embed_class`).
    """
    name: str
    marker: str
    rename: Callable[[Mapping[str, torch.Tensor], str], EncoderKeys]
    matches: Callable[[Sequence[str], str], bool] = _every_file
    priority: int = 0
    labels: Tuple[str, ...] = ()
    label: Optional[Callable[[str, str, Mapping[str, Any], bool], str]] = None
    whole_model: Callable[[Parts], Parts] = _unchanged
    read: Optional[Callable[[str], Mapping[str, Any]]] = None
    suffixes: Tuple[str, ...] = ()
    without_cls_row: Tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.labels:
            object.__setattr__(self, 'labels', (self.name,))
        if (self.read is None) != (not self.suffixes):
            raise ValueError(f'format {self.name!r}: `read` and `suffixes` go together')

    def source_label(self, container: str, prefix: str, checkpoint: Mapping[str, Any], ours: bool) -> str:
        """The label of one file of this family (see `label`)."""
        return self.label(container, prefix, checkpoint, ours) if self.label else self.labels[0]


FORMATS: Dict[str, CheckpointFormat] = {}


def register_format(fmt: CheckpointFormat) -> CheckpointFormat:
    """Add a format to the registry (a user's format calls this in its own module).

    Raises:
        ValueError: its name, one of its labels or one of its reader's suffixes is taken.
    """
    for other in FORMATS.values():
        clash = ({fmt.name} & {other.name}) or (set(fmt.labels) & set(other.labels)) \
            or (set(fmt.suffixes) & set(other.suffixes))
        if clash:
            raise ValueError(f'format {fmt.name!r}: {sorted(clash)} already belongs to format {other.name!r}')
    FORMATS[fmt.name] = fmt
    return fmt


def detect(keys: Sequence[str]) -> Optional[Tuple[CheckpointFormat, str]]:
    """(format, encoder prefix) of a state dict, or None when no format's marker is there.

    Args:
        keys: state dict keys.

    Raises:
        UnknownCheckpointFormatError: encoders in two key schemes (markers), or two formats of equal priority
            that both match.
    """
    keys = list(keys)
    prefixes = {marker: found[0] for marker in {fmt.marker for fmt in FORMATS.values()}
                for found in [encoder_prefixes(keys, marker)] if found}
    fitting = [(fmt, prefixes[fmt.marker]) for fmt in FORMATS.values()
               if fmt.marker in prefixes and fmt.matches(keys, prefixes[fmt.marker])]
    if len({fmt.marker for fmt, _ in fitting}) > 1:
        found = sorted((fmt.name, prefix) for fmt, prefix in fitting)
        raise UnknownCheckpointFormatError(
            f'the checkpoint holds encoders in several key schemes ({found}); convert it with an explicit --format')
    if not fitting:
        return None
    top = max(fmt.priority for fmt, _ in fitting)
    best = sorted((pair for pair in fitting if pair[0].priority == top), key=lambda pair: pair[0].name)
    if len(best) > 1:
        raise UnknownCheckpointFormatError(
            f'the checkpoint fits the formats {[fmt.name for fmt, _ in best]} equally; convert it with an explicit '
            '--format')
    return best[0]


def detect_scheme(keys: Sequence[str]) -> Optional[Tuple[str, str]]:
    """(format family name, encoder prefix) of a state dict, or None: `detect` by name."""
    found = detect(keys)
    return (found[0].name, found[1]) if found else None


def format_labels() -> Tuple[str, ...]:
    """Every label of every registered format (what `--format` accepts besides 'auto')."""
    return tuple(label for fmt in FORMATS.values() for label in fmt.labels)


def format_by_label(label: str) -> CheckpointFormat:
    """The format one of whose labels is `label`.

    Raises:
        ValueError: no registered format has that label.
    """
    for fmt in FORMATS.values():
        if label in fmt.labels:
            return fmt
    raise ValueError(f'unknown format {label!r}; choose auto or one of {format_labels()}')


def reader_for(path: Any) -> Optional[Callable[[str], Mapping[str, Any]]]:
    """The reader of the format whose files end like `path` (detectron2's `.pkl`), or None for the files
    torch.load / safetensors read."""
    suffix = Path(str(path)).suffix
    return next((fmt.read for fmt in FORMATS.values() if fmt.read is not None and suffix in fmt.suffixes), None)


# the built-in formats register themselves as they are imported (the order makes no difference to detection)
from .canonical import canonical_label  # noqa: E402
from .mmpretrain import rename_mmpretrain  # noqa: E402
from .huggingface import HF_WEIGHT_FILES, rename_huggingface, sidecar_hints  # noqa: E402
from .mmseg_beit import is_mmseg_beit, rename_mmseg_beit  # noqa: E402
from .mmpose_vitpose import is_mmpose_vitpose, rename_mmpose_vitpose  # noqa: E402
from .vitpose import is_vitpose, rename_vitpose  # noqa: E402
from .detectron2 import (DETECTRON2_FORMAT, DETECTRON2_SUFFIX, detectron2_to_mmdet, is_detectron2,  # noqa: E402
                         load_detectron2_checkpoint, rename_detectron2_pyramid, safe_pickle_load)
from .mmdet_vitdet import MMDET_VITDET_FORMAT, is_mmdet_vitdet, rename_mmdet_vitdet_key  # noqa: E402

# the labels of the built-in formats (tools/convert.py's --format choices); `format_labels()` includes later ones
CHECKPOINT_FORMATS = format_labels()

__all__ = [
    'BLOCK_KEY', 'CANONICAL_BLOCK_KEYS', 'CANONICAL_MARKER', 'CANONICAL_TOP_KEYS', 'CHECKPOINT_FORMATS',
    'CheckpointFormat', 'DECODER_NAMES', 'DETECTRON2_FORMAT', 'DETECTRON2_SUFFIX',
    'EncoderKeys', 'FORMATS', 'HEAD_NAMES', 'HF_WEIGHT_FILES', 'HUGGINGFACE_MARKER',
    'MMDET_VITDET_FORMAT', 'MMPRETRAIN_MARKER', 'UnknownCheckpointFormatError', 'canonical_label', 'detect',
    'detect_scheme', 'detectron2_to_mmdet', 'dropped_kind', 'encoder_prefixes', 'format_by_label',
    'format_labels', 'is_detectron2', 'is_mmdet_vitdet', 'is_mmpose_vitpose', 'is_mmseg_beit', 'is_vitpose',
    'leading_kind', 'load_detectron2_checkpoint', 'reader_for', 'refuse_unplaced', 'register_format',
    'rename_detectron2_pyramid', 'rename_huggingface', 'rename_mmdet_vitdet_key', 'rename_mmpose_vitpose',
    'rename_mmpretrain', 'rename_mmseg_beit', 'rename_prefixes', 'rename_vitpose',
    'safe_pickle_load', 'sidecar_hints', 'split_canonical', 'under_prefix',
    'unwrap_checkpoint', 'vitpose_grid', 'with_zero_cls_token',
]
