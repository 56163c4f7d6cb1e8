"""Check the config values the toolkit reads itself, before any model or dataset is built.

A value given through `--cfg-options` (or written in a config) that is of the wrong type or out of range would
otherwise surface as a traceback deep in lr scaling or in mmengine's loops (`batch_size=eight`: a TypeError in
the lr scaling; `batch_size=-4`: a ValueError of the sampler). Each rule names a dotted key, what it must be, and
the check; `check_config_values` raises one `ConfigValueError` (a user error: one line, exit status 2) naming
every value that breaks its rule.

Also here: `check_writable_dir`, so that a work dir or an output folder on a read-only file system is said in
one line before anything runs.
"""
import numbers
import os
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple

from mmengine.config import Config

from .user_errors import UserError

LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


class ConfigValueError(ValueError, UserError):
    """A config value the toolkit reads is of the wrong type or out of its range."""


def _whole(minimum: int) -> Tuple[str, Callable[[Any], bool]]:
    return (f'a whole number >= {minimum}',
            lambda value: isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum)


def _positive_number() -> Tuple[str, Callable[[Any], bool]]:
    return ('a number > 0', lambda value: isinstance(value, numbers.Real) and not isinstance(value, bool)
            and value > 0)


# (dotted key, (what it must be, check)); a key the config does not have is not checked
RULES: Sequence[Tuple[str, Tuple[str, Callable[[Any], bool]]]] = (
    *[(f'{loader}.batch_size', _whole(1)) for loader in LOADERS],
    *[(f'{loader}.num_workers', _whole(0)) for loader in LOADERS],
    ('optim_wrapper.optimizer.lr', _positive_number()),
    ('optim_wrapper.accumulative_counts', _whole(1)),
    ('train_cfg.max_epochs', _whole(1)),
    ('train_cfg.max_iters', _whole(1)),
    ('train_cfg.val_interval', _whole(1)),
    ('auto_scale_lr.base_batch_size', _whole(1)),
)
_ABSENT = object()


def _lookup(cfg: Any, dotted: str) -> Any:
    value = cfg
    for part in dotted.split('.'):
        if not hasattr(value, 'get'):
            return _ABSENT
        value = value.get(part, _ABSENT)
        if value is _ABSENT or value is None:
            return _ABSENT
    return value


def check_config_values(cfg: Config, source: Optional[str] = None) -> None:
    """Raise `ConfigValueError` naming every value of `RULES` that breaks its rule.

    Args:
        cfg: the config after `--cfg-options` are merged.
        source: how the message names the config (its path); `cfg.filename` when left out.
    """
    problems: List[str] = []
    for key, (expected, valid) in RULES:
        value = _lookup(cfg, key)
        if value is not _ABSENT and not valid(value):
            problems.append(f'{key} is {value!r}, expected {expected}')
    if problems:
        name = source or getattr(cfg, 'filename', None) or 'the config'
        raise ConfigValueError(f'{name}: ' + '; '.join(problems) + ' (set it in the config or with --cfg-options)')


def check_writable_dir(path: str, what: str) -> None:
    """Create `path` if needed and make sure a file can be written in it; one line otherwise.

    Args:
        path: a folder.
        what: how the message names it ('work dir', 'output folder of --out').
    """
    folder = Path(path)
    probe = folder / f'.write-test-{os.getpid()}'
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b'')
        probe.unlink()
    except OSError as error:
        raise ConfigValueError(f'cannot write to the {what} {folder}: {error.strerror or error}; '
                               'choose a writable folder') from error


__all__ = ['ConfigValueError', 'RULES', 'check_config_values', 'check_writable_dir']
