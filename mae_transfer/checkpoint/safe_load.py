"""Load checkpoints with `weights_only=True` on PyTorch >= 2.6, allowing only the types they really hold.

PyTorch 2.6 made `torch.load` refuse every pickled class that is not on an allowlist. mmengine 0.10.7
checkpoints store the message hub's `HistoryBuffer` objects and numpy arrays/scalars, and official MAE
checkpoints store their `argparse.Namespace` of arguments, so resuming or loading them fails. We add
exactly those types to the allowlist, once, when `mae_transfer` is imported. We never fall back to
`weights_only=False`: a checkpoint downloaded from the internet must not be able to run code.

One case needs care: a pickled HistoryBuffer carries its statistics methods as `getattr(HistoryBuffer, 'min')`.
Allowing `getattr` itself would let a file walk from any allowed object to `os.system`, so the pickled
name `getattr` is mapped to `_history_buffer_method`, which only answers those four lookups.

mmengine's loader for local files is replaced by one that raises `UnsafeCheckpointError`, naming the
refused classes, instead of a bare unpickling error deep in a resume.
"""
import argparse
import codecs
import collections
import os.path as osp
import pickle
from typing import List, Union

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

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


# ----------------------------------------------------------------------------------------------------------
# detectron2 model zoo files (`model_final_*.pkl`): a plain pickle of numpy arrays, read without running code
# ----------------------------------------------------------------------------------------------------------

DETECTRON2_SUFFIX = '.pkl'
# (module, name) pairs a detectron2 pickle may name: numpy's array / scalar / dtype reconstructors (numpy 1.x
# spells the module numpy.core, 2.x numpy._core), OrderedDict, and `_codecs.encode`, which protocol-2 pickles
# use to spell bytes. Everything else (a class, a function) is refused by name.
NUMPY_PICKLE_GLOBALS = {
    **{(module, name): getattr(getattr(np, '_core', None) or np.core, 'multiarray').__dict__[name]
       for module in ('numpy.core.multiarray', 'numpy._core.multiarray') for name in ('_reconstruct', 'scalar')},
    **{(module, '_frombuffer'): getattr(getattr(np, '_core', None) or np.core, 'numeric')._frombuffer
       for module in ('numpy.core.numeric', 'numpy._core.numeric')},  # arrays pickled with protocol 5
    ('numpy', 'ndarray'): np.ndarray, ('numpy', 'dtype'): np.dtype,
    **{('numpy.dtypes', name): getattr(np.dtypes, name) for name in dir(np.dtypes) if name.endswith('DType')},
    ('collections', 'OrderedDict'): collections.OrderedDict, ('_codecs', 'encode'): codecs.encode,
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits numpy arrays, numpy scalars and dtypes, and plain containers; refuses any other global."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in NUMPY_PICKLE_GLOBALS:
            return NUMPY_PICKLE_GLOBALS[(module, name)]
        raise UnsafeCheckpointError(f'{module}.{name}')


def safe_pickle_load(path: str) -> object:
    """Unpickle a detectron2 checkpoint (`.pkl`) admitting only numpy arrays and plain containers.

    Raises:
        UnsafeCheckpointError: the file names another class or function (named in the message).
        CorruptCheckpointError: the file is empty, truncated or not a pickle.
    """
    try:
        with open(path, 'rb') as handle:
            return _NumpyOnlyUnpickler(handle, encoding='latin1').load()  # latin1: Python 2 era files
    except UnsafeCheckpointError as error:
        raise UnsafeCheckpointError(
            f'Refusing to load {path}: this detectron2 checkpoint contains {error}, and unpickling arbitrary '
            'objects can run code. mae_transfer reads detectron2 checkpoints with numpy arrays and plain '
            'containers only.') from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as error:
        size = osp.getsize(path) if osp.isfile(path) else 0
        raise CorruptCheckpointError(
            f'{path} ({size} bytes) is not a readable detectron2 checkpoint: it is empty, truncated or another '
            f'kind of file. pickle said: {type(error).__name__}: {str(error)[:200]}') from error


def load_detectron2_checkpoint(path: str) -> dict:
    """A detectron2 ViTDet `.pkl` as an mmdet checkpoint: {'state_dict': MAEViT `backbone.*` + SimpleFPN
    `neck.*`, 'meta': {'source_format': 'detectron2', 'dropped_keys': detectron2's head keys}}."""
    from .formats import DETECTRON2_FORMAT, UnknownCheckpointFormatError, detectron2_to_mmdet
    loaded = safe_pickle_load(path)
    model = loaded.get('model') if isinstance(loaded, dict) else None
    if not isinstance(model, dict):
        raise UnknownCheckpointFormatError(f'{path}: a detectron2 checkpoint keeps its weights under "model"; '
                                           f'found {sorted(loaded)[:8] if isinstance(loaded, dict) else loaded}')
    state_dict, left_out = detectron2_to_mmdet(model)
    return {'state_dict': state_dict, 'meta': {'source_format': DETECTRON2_FORMAT, 'dropped_keys': left_out}}


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_from_local(filename: str, map_location: Union[str, torch.device, None]) -> object:
    """mmengine's loader for local paths (resume, load_from, init_cfg Pretrained), with clear refusals."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} does not exist')
    if filename.endswith(DETECTRON2_SUFFIX):
        return load_detectron2_checkpoint(filename)
    return safe_torch_load(filename, map_location=map_location)


register_safe_globals()
