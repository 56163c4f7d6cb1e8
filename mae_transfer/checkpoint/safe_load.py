"""Load checkpoints with `weights_only=True` on PyTorch >= 2.6, allowing only the types they really hold.

PyTorch 2.6 made `torch.load` refuse every pickled class that is not on an allowlist. mmengine 0.10.7
checkpoints store the message hub's `HistoryBuffer` objects and numpy arrays/scalars, and official MAE
checkpoints store their `argparse.Namespace` of arguments, so resuming or loading them fails. We add
exactly those types to the allowlist, once, when `mae_transfer` is imported. We never fall back to
`weights_only=False`: a checkpoint downloaded from the internet must not be able to run code.

One case needs care: a pickled HistoryBuffer carries its statistics methods as `getattr(HistoryBuffer, 'min')`.
Allowing `getattr` itself would let a file walk from any allowed object to `os.system`, so the pickled
name `getattr` is mapped to `_history_buffer_method`, which only answers those four lookups.

`load_from_local` is mmengine's loader for local files (installed by `mmengine_bridge`): it raises `UnsafeCheckpointError`, naming the
refused classes, instead of a bare unpickling error deep in a resume, and that reads the files of formats that
are no torch files with their format's own reader (`formats.reader_for`: detectron2's numpy-only `.pkl` reader
lives in `formats/detectron2.py`).
"""
import argparse
import os.path as osp
import pickle
from typing import List, Union

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

from ..utils.user_errors import UserError


class UnsafeCheckpointError(pickle.UnpicklingError, UserError):
    """A checkpoint holds a class that is not on the allowlist, so unpickling it could run code."""


class CorruptCheckpointError(RuntimeError, UserError):
    """The file is not a PyTorch checkpoint, or it is truncated or damaged."""


def _numpy_globals() -> List[object]:
    """The numpy reconstructors pickle uses for arrays, scalars and dtypes, under numpy 1.x and 2.x names."""
    multiarray = getattr(np, '_core', None) or np.core
    dtype_classes = [getattr(np.dtypes, name) for name in dir(np.dtypes) if name.endswith('DType')]
    return [multiarray.multiarray._reconstruct, multiarray.multiarray.scalar, np.ndarray, np.dtype,
            *dtype_classes]


HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')


def _history_buffer_method(owner: object, name: str) -> object:
    """Stands in for `getattr` while unpickling: only HistoryBuffer's own statistics methods."""
    if owner is HistoryBuffer and name in HISTORY_BUFFER_STATISTICS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f'refusing getattr({owner!r}, {name!r}) while unpickling a checkpoint')


SAFE_GLOBALS = [
    HistoryBuffer, argparse.Namespace, *_numpy_globals(),
    # torch.save pickles with protocol 2, which spells the builtins module '__builtin__'.
    (_history_buffer_method, '__builtin__.getattr'), (_history_buffer_method, 'builtins.getattr'),
]


def register_safe_globals() -> None:
    torch.serialization.add_safe_globals(SAFE_GLOBALS)


def safe_torch_load(path: str, map_location: Union[str, torch.device, None] = 'cpu') -> object:
    """`torch.load` with weights_only=True that explains a refusal instead of only raising it."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        if 'Unsupported operand' in str(error):  # bytes that are no pickle at all, not a refused class
            raise _corrupt(path, error) from error
        try:
            refused = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:  # not a zip checkpoint: torch's own message is all we have
            refused = []
        names = ', '.join(refused) or 'an object that is not allowlisted'
        # torch's own text: a generic preamble, then the real reason after 'WeightsUnpickler error:'
        text = str(error)
        detail = ' '.join(text.split('WeightsUnpickler error:', 1)[-1].split())[:500]
        raise UnsafeCheckpointError(
            f'Refusing to load {path}: it contains {names}, and unpickling arbitrary objects can run code. '
            'mae_transfer allows only tensors, containers, numpy arrays, mmengine HistoryBuffer and '
            'argparse.Namespace. If you created this file yourself and trust it, re-save just its tensors '
            f'(state_dict). Detail: {detail}') from error
    except (EOFError, KeyError, ValueError, RuntimeError) as error:
        # What torch raises for an empty, truncated or foreign file (e.g. an HTML error page saved as .pth).
        raise _corrupt(path, error) from error


def _corrupt(path: str, error: Exception) -> CorruptCheckpointError:
    size = osp.getsize(path) if osp.isfile(path) else 0
    reason = ' '.join(str(error).split('WeightsUnpickler error:', 1)[-1].split())
    reason = reason.split(' Check the documentation of torch.load')[0][:200]  # torch's generic advice: not ours
    return CorruptCheckpointError(
        f'{path} ({size} bytes) is not a readable PyTorch checkpoint: it is empty, truncated (an interrupted '
        f'download or copy?) or another kind of file. torch said: {type(error).__name__}: {reason}')


def load_from_local(filename: str, map_location: Union[str, torch.device, None]) -> object:
    """mmengine's loader for local paths (resume, load_from, init_cfg Pretrained), with clear refusals."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} does not exist')
    from .formats import reader_for  # the formats' readers use this module's errors: imported when used
    reader = reader_for(filename)  # a format whose files are no torch files (detectron2 `.pkl`)
    if reader is not None:
        return reader(filename)
    return safe_torch_load(filename, map_location=map_location)


register_safe_globals()
