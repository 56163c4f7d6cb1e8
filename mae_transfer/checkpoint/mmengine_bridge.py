"""The one place where mae_transfer replaces mmengine functions, all at `import mae_transfer` (`install`).

mmengine's own tools (mmdet's and mmseg's `tools/train.py` / `test.py`, a user's script) load weights through
three mmengine entries; for models that hold a mae_transfer ViT each becomes `adapt.load_weights`, so that a
checkpoint of any supported format loads the same way, with the same report, whoever asks:

    Runner.load_checkpoint           `load_from`, `--resume`, `runner.test()`
    mmengine.runner.load_checkpoint  the apis of mmdet / mmseg, user code; and `_load_checkpoint_to_model`, which
                                     it calls, for code that bound mmengine's function before `import mae_transfer`
    WEIGHT_INITIALIZERS 'Pretrained' `init_cfg=dict(type='Pretrained', checkpoint=..., prefix=..., checkpoint_grid=...)`

Models without a mae_transfer ViT keep mmengine's behaviour unchanged. Beside them, for files on disk:

    CheckpointLoader's local scheme  `safe_load.load_from_local`: weights only, an allowlist of types, the
                                     readers of formats that are no torch files (detectron2 `.pkl`)
    LocalBackend.put / put_text      `files.atomic_write`: a crash never leaves a torn checkpoint
    runner.find_latest_checkpoint    `files.find_latest_checkpoint`: `--resume` survives a torn pointer

An evaluation must not run on a model whose trained parts kept their initialisation: the commands that evaluate
(`tools/test.py`, `infer`) load inside `evaluation_load()`, which makes every load of it `complete`.
"""
import contextlib
import contextvars
import os.path as osp
from typing import Any, Iterator, List, Optional, Tuple

from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.model.weight_init import PretrainedInit
from mmengine.registry import WEIGHT_INITIALIZERS
from torch import nn

from .adapt import find_vit, load_weights
from .files import read_checkpoint_file, resolve_checkpoint_path

# whether loads in this context are for an evaluation (`complete`): set by `evaluation_load`
_EVALUATING = contextvars.ContextVar('mae_transfer_evaluating', default=False)
_ORIGINAL = {}  # mmengine's functions, kept to serve models without our ViT


@contextlib.contextmanager
def evaluation_load(allow_partial: bool = False) -> Iterator[None]:
    """Loads inside this block are for an evaluation: a checkpoint that leaves a part of the model at its
    initialisation raises `PartialCheckpointError`, unless `allow_partial`."""
    token = _EVALUATING.set(not allow_partial)
    try:
        yield
    finally:
        _EVALUATING.reset(token)


def _ours(model: nn.Module) -> Optional[nn.Module]:
    """The model without its DDP wrapper when it holds a mae_transfer ViT, else None."""
    model = model.module if is_model_wrapper(model) else model
    return model if find_vit(model)[1] is not None else None


def _read(filename: str, map_location: Any) -> Tuple[Any, dict]:
    """(checkpoint, hints) of a local file through our reader; mmengine's loaders for URLs and other schemes."""
    if osp.exists(osp.expanduser(filename)):
        return read_checkpoint_file(resolve_checkpoint_path(filename, prefer_safetensors=False))
    from mmengine.runner.checkpoint import _load_checkpoint
    return _load_checkpoint(filename, map_location=map_location), {}


def runner_load_checkpoint(self: Any, filename: str, map_location: Any = 'cpu', strict: bool = False,
                           revise_keys: List[Tuple[str, str]] = [(r'^module.', '')]) -> dict:  # noqa: B006 (mmengine's)
    """`Runner.load_checkpoint`: `load_from`, `--resume` and `runner.test()` load through `load_weights`."""
    model = _ours(self.model)
    if model is None:
        return _ORIGINAL['runner'](self, filename, map_location=map_location, strict=strict, revise_keys=revise_keys)
    checkpoint, hints = _read(filename, map_location)
    self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
    load_weights(model, checkpoint, strict=strict, source=filename, hints=hints, complete=_EVALUATING.get())
    self._has_loaded = True  # what mmengine's own method records: runner.test() then loads nothing more
    return checkpoint


def load_checkpoint(model: nn.Module, filename: str, map_location: Any = None, strict: bool = False,
                    logger: Any = None, revise_keys: List[Tuple[str, str]] = [(r'^module\.', '')]) -> dict:  # noqa: B006
    """`mmengine.runner.load_checkpoint`: models with our ViT load through `load_weights`."""
    ours = _ours(model)
    if ours is None:
        return _ORIGINAL['function'](model, filename, map_location=map_location, strict=strict, logger=logger,
                                     revise_keys=revise_keys)
    checkpoint, hints = _read(filename, map_location)
    load_weights(ours, checkpoint, strict=strict, source=filename, hints=hints, complete=_EVALUATING.get())
    return checkpoint


def load_checkpoint_to_model(model: nn.Module, checkpoint: dict, strict: bool = False, logger: Any = None,
                             revise_keys: List[Tuple[str, str]] = [(r'^module\.', '')]) -> dict:  # noqa: B006
    """mmengine's `_load_checkpoint_to_model`: what its own `load_checkpoint` calls once the file is read."""
    ours = _ours(model)
    if ours is None:
        return _ORIGINAL['to_model'](model, checkpoint, strict=strict, logger=logger, revise_keys=revise_keys)
    load_weights(ours, checkpoint, strict=strict, complete=_EVALUATING.get())
    return checkpoint


class MAETransferPretrainedInit(PretrainedInit):
    """mmengine's `Pretrained` initialiser; for a module holding a mae_transfer ViT it loads through
    `load_weights` (any supported format, pos-embed resized, one report).

    Args:
        checkpoint: the file; None keeps the module's initialisation (a config a child may point at a file).
        prefix: read only the keys under this prefix.
        map_location: for mmengine's loader (modules without our ViT).
        checkpoint_grid: (h, w) patch grid of a learned, non-square pos_embed that the file does not record.
    """

    def __init__(self, checkpoint: Optional[str], prefix: Optional[str] = None, map_location: str = 'cpu',
                 checkpoint_grid: Optional[Tuple[int, int]] = None) -> None:
        super().__init__(checkpoint, prefix=prefix, map_location=map_location)
        self.checkpoint_grid = checkpoint_grid

    def __call__(self, module: nn.Module) -> None:
        if find_vit(module)[1] is None:
            return super().__call__(module)
        if not self.checkpoint:
            print_log(f'{type(module).__name__}: init_cfg Pretrained names no checkpoint; the weights keep their '
                      'initialisation', logger='current')
            return None
        load_weights(module, self.checkpoint, prefix=self.prefix, checkpoint_grid=self.checkpoint_grid)
        return None


def install() -> None:
    """Route mmengine's weight loading and checkpoint file handling through mae_transfer (idempotent)."""
    import mmengine.runner
    import mmengine.runner.checkpoint as mmengine_checkpoint
    import mmengine.runner.runner as mmengine_runner
    from mmengine.fileio.backends.local_backend import LocalBackend

    from . import files, safe_load

    _ORIGINAL.setdefault('runner', mmengine_runner.Runner.load_checkpoint)
    _ORIGINAL.setdefault('function', mmengine_checkpoint.load_checkpoint)
    _ORIGINAL.setdefault('to_model', mmengine_checkpoint._load_checkpoint_to_model)
    mmengine_runner.Runner.load_checkpoint = runner_load_checkpoint
    mmengine_checkpoint.load_checkpoint = load_checkpoint
    mmengine_checkpoint._load_checkpoint_to_model = load_checkpoint_to_model
    mmengine.runner.load_checkpoint = load_checkpoint
    WEIGHT_INITIALIZERS.register_module(name='Pretrained', module=MAETransferPretrainedInit, force=True)
    mmengine_checkpoint.CheckpointLoader.register_scheme(prefixes='', loader=safe_load.load_from_local, force=True)
    LocalBackend.put = files.put_atomic
    LocalBackend.put_text = files.put_text_atomic
    mmengine_runner.find_latest_checkpoint = files.find_latest_checkpoint


__all__ = ['MAETransferPretrainedInit', 'evaluation_load', 'install', 'load_checkpoint', 'load_checkpoint_to_model',
           'runner_load_checkpoint']
