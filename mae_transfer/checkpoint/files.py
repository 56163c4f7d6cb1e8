"""Checkpoint files on disk: which file to read, reading it safely, and writing one that is never torn.

Reading: `resolve_checkpoint_path` (stems, a `.safetensors` sibling, HuggingFace model directories),
`read_checkpoint_file` (`.safetensors` with safetensors, everything else with `safe_torch_load`: weights only,
an allowlist of types), `load_pretrained_encoder` (read + `canonicalize`).

Writing: `atomic_write` is the one way this package puts bytes on disk. It writes `<name>.tmp-<pid>`, fsyncs it
and `os.replace`s it onto `<name>`, so a crash (or SIGKILL, or a full disk) leaves the old file intact, never a
truncated one (rename is atomic on POSIX and Windows). `save_encoder_checkpoint`, the timm export and mmengine's
own checkpoint writes (after `mmengine_bridge.install`) all go through it.

mmengine writes a checkpoint with `LocalBackend.put` straight into its final path and `last_checkpoint` with a
plain `open(..., 'w')`; `mmengine_bridge.install` (run on `import mae_transfer`) routes
`LocalBackend.put` / `put_text` through `atomic_write` (`put_atomic`), and makes the Runner's `find_latest_checkpoint` accept
`last_checkpoint` only when it names an existing, non-empty file; otherwise (torn or missing pointer) it falls
back to the newest complete `epoch_N.pth` / `iter_N.pth` of the work dir and says so.
"""
import os
import os.path as osp
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

import torch
from mmengine.logging import print_log

from .canonical import META_MARKER, CheckpointMeta, canonicalize
from .formats import HF_WEIGHT_FILES, UnknownCheckpointFormatError, reader_for, sidecar_hints
from .safe_load import safe_torch_load

PathLike = Union[str, os.PathLike]
TORCH_SUFFIXES = ('.pth', '.pt', '.bin', '.ckpt')
SAFETENSORS_SUFFIX = '.safetensors'
Writable = Union[bytes, str, Callable[[str], None]]


# ----------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------

def atomic_write(data: Writable, path: PathLike, encoding: str = 'utf-8') -> Path:
    """Write `data` to `path` so that readers see either the old file or the whole new one.

    Args:
        data: bytes, text (encoded with `encoding`), or a function that writes the file at the temporary path
            it is given (e.g. `lambda tmp: torch.save(obj, tmp)`), so that large files are not held in memory.
        path: destination; its folder is created.
        encoding: for text.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = path.with_name(f'{path.name}.tmp-{os.getpid()}')
    try:
        if callable(data):
            data(str(tmp_path))
            fd = os.open(tmp_path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        else:
            with open(tmp_path, 'wb') as handle:
                handle.write(data.encode(encoding) if isinstance(data, str) else data)
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
    return path


def save_weights(state_dict: Mapping[str, torch.Tensor], path: PathLike,
                 safetensors_metadata: Optional[Dict[str, str]] = None, torch_object: Any = None) -> Path:
    """Write tensors atomically, by suffix: `.safetensors` (with string metadata), else `torch.save`.

    Args:
        state_dict: the tensors (shared or non-contiguous ones are copied for safetensors).
        path: destination ending in `.safetensors`, `.pth` or `.pt`.
        safetensors_metadata: header metadata of a `.safetensors` file.
        torch_object: what `torch.save` writes for `.pth` / `.pt` (the bare state dict when left out).
    """
    path = Path(path)
    if path.suffix == SAFETENSORS_SUFFIX:
        from safetensors.torch import save_file
        tensors = _unshared(state_dict)
        return atomic_write(lambda tmp: save_file(tensors, tmp, metadata=safetensors_metadata), path)
    if path.suffix not in ('.pth', '.pt'):
        raise ValueError(f'cannot write {path}: use a .pth, .pt or .safetensors name')
    payload = dict(state_dict) if torch_object is None else torch_object
    return atomic_write(lambda tmp: torch.save(payload, tmp), path)


def save_encoder_checkpoint(state_dict: Mapping[str, torch.Tensor], meta: CheckpointMeta, path: PathLike) -> Path:
    """Write canonical weights + meta atomically: `.pth` as {'state_dict', 'meta'}, `.safetensors` with the
    meta as string metadata.

    Args:
        state_dict: canonical encoder weights.
        meta: their `CheckpointMeta`.
        path: destination ending in `.pth`, `.pt` or `.safetensors`.
    """
    return save_weights(state_dict, path, safetensors_metadata=meta.to_safetensors_metadata(),
                        torch_object={'state_dict': dict(state_dict), 'meta': meta.to_dict()})


def _unshared(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """safetensors refuses tensors that share memory or are not contiguous: copy those."""
    seen = set()
    result = {}
    for key, tensor in state_dict.items():
        tensor = tensor.detach().contiguous()
        storage = tensor.untyped_storage().data_ptr()
        if tensor.numel() and storage in seen:
            tensor = tensor.clone()
            storage = tensor.untyped_storage().data_ptr()
        seen.add(storage)
        result[key] = tensor
    return result


# ----------------------------------------------------------------------------------------------------------
# mmengine: atomic checkpoint writes, a resume that survives a torn pointer
# ----------------------------------------------------------------------------------------------------------

def put_atomic(self: Any, obj: bytes, filepath: PathLike) -> None:
    """mmengine `LocalBackend.put` through `atomic_write` (installed by `mmengine_bridge`)."""
    atomic_write(obj, filepath)


def put_text_atomic(self: Any, obj: str, filepath: PathLike, encoding: str = 'utf-8') -> None:
    """mmengine `LocalBackend.put_text` through `atomic_write` (installed by `mmengine_bridge`)."""
    atomic_write(obj, filepath, encoding)


_CHECKPOINT_NAME = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


def newest_checkpoint(work_dir: str) -> Optional[str]:
    """The complete `epoch_N.pth` / `iter_N.pth` with the largest N in `work_dir` (temporary files ignored)."""
    if not osp.isdir(work_dir):
        return None
    found = []
    for name in os.listdir(work_dir):
        match = _CHECKPOINT_NAME.match(name)
        path = osp.join(work_dir, name)
        if match and osp.getsize(path) > 0:
            found.append((int(match.group(2)), path))
    return max(found)[1] if found else None


def find_latest_checkpoint(work_dir: str) -> Optional[str]:
    """Where `--resume` continues from: `last_checkpoint` if it is sound, else the newest checkpoint file."""
    pointer = osp.join(work_dir, 'last_checkpoint')
    named = None
    if osp.isfile(pointer):
        with open(pointer) as f:
            named = f.read().strip()
        if named and osp.isfile(named) and osp.getsize(named) > 0:
            return named
    fallback = newest_checkpoint(work_dir)
    if fallback is not None:
        problem = 'no last_checkpoint' if named is None else f'last_checkpoint names {named!r}, missing or empty'
        print_log(f'{work_dir}: {problem}; resuming from the newest complete checkpoint {fallback}',
                  logger='current')
    return fallback


# ----------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------

def resolve_checkpoint_path(path: PathLike, prefer_safetensors: bool = True) -> Path:
    """The file to read for `path`.

    A `.safetensors` file of the same stem beside a `.pth` / `.bin` wins when `prefer_safetensors` (no pickle
    involved, and it is what `tools/download_checkpoint.py` writes next to the download); a path without
    suffix is tried with each known suffix; a HuggingFace model directory gives its `model.safetensors` or
    `pytorch_model.bin`.

    Args:
        path: a file, a stem, or a HuggingFace model directory.
        prefer_safetensors: look for a sibling `.safetensors` first.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        for name in HF_WEIGHT_FILES:
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f'{path} is a directory without {" or ".join(HF_WEIGHT_FILES)}')
    # a format's own reader (detectron2 `.pkl`) makes its suffix a checkpoint's too
    known_suffix = path.suffix in TORCH_SUFFIXES + (SAFETENSORS_SUFFIX,) or reader_for(path) is not None
    stem = path.with_suffix('') if known_suffix else path
    if prefer_safetensors and path.suffix != SAFETENSORS_SUFFIX:
        sibling = stem.parent / (stem.name + SAFETENSORS_SUFFIX)
        if sibling.is_file():
            if path.is_file():
                print_log(f'Reading {sibling.name} instead of {path.name} (safetensors preferred).', logger='current')
            return sibling
    if path.is_file():
        return path
    if not known_suffix:
        for suffix in (SAFETENSORS_SUFFIX,) + TORCH_SUFFIXES:
            candidate = stem.parent / (stem.name + suffix)
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(f'checkpoint {path} does not exist')


def read_checkpoint_file(path: PathLike) -> Tuple[Mapping[str, Any], Dict[str, Any]]:
    """(loaded checkpoint, hints) of one file; never unpickles anything but allowlisted types.

    Args:
        path: a `.safetensors` file, a file a format reads itself (`formats.reader_for`: detectron2's `.pkl`,
            numpy arrays only), or a `.pth` / `.pt` / `.bin` / `.ckpt` file for `safe_torch_load`.

    Returns:
        the checkpoint, and hints from metadata stored beside the weights (our own meta in a safetensors
        header, or `formats.sidecar_hints`).
    """
    path = Path(path)
    hints = sidecar_hints(path)
    if path.suffix == SAFETENSORS_SUFFIX:
        from safetensors import safe_open
        from safetensors.torch import load_file
        with safe_open(str(path), framework='pt') as handle:
            metadata = handle.metadata() or {}
        meta = CheckpointMeta.from_safetensors_metadata(metadata)
        if meta is not None:
            hints.update(asdict(meta), **{META_MARKER: True})
        return load_file(str(path), device='cpu'), hints
    reader = reader_for(path)
    if reader is not None:
        return reader(str(path)), hints  # the format's own reader (detectron2: numpy-only unpickler)
    return safe_torch_load(str(path), map_location='cpu'), hints


def load_pretrained_encoder(path: PathLike, format: str = 'auto',
                            prefer_safetensors: bool = True) -> Tuple[Dict[str, torch.Tensor], CheckpointMeta]:
    """Canonical encoder weights and metadata from a checkpoint file in any supported format.

    Args:
        path: the file (see `resolve_checkpoint_path` for stems, siblings and HF directories).
        format: 'auto' or one of `CHECKPOINT_FORMATS`.
        prefer_safetensors: read `X.safetensors` instead of `X.pth` when both exist.

    Returns:
        (state_dict, meta) as from `convert_state_dict`.
    """
    resolved = resolve_checkpoint_path(path, prefer_safetensors=prefer_safetensors)
    checkpoint, hints = read_checkpoint_file(resolved)
    try:
        result = canonicalize(checkpoint, format=format, hints=hints)
    except UnknownCheckpointFormatError as error:
        raise UnknownCheckpointFormatError(f'{resolved}: {error}') from error
    print_log(f'{resolved}: {result.meta.summary()}; {len(result.encoder)} encoder tensors, '
              f'{len(result.meta.dropped_keys)} keys dropped.', logger='current')
    return result.encoder, result.meta


__all__ = ['PathLike', 'atomic_write', 'find_latest_checkpoint', 'put_atomic', 'put_text_atomic',
           'load_pretrained_encoder', 'newest_checkpoint', 'read_checkpoint_file', 'resolve_checkpoint_path',
           'save_encoder_checkpoint', 'save_weights']
