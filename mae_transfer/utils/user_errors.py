"""One process entry for every command: a fault the user can fix ends with one line and exit status 2.

    mae-transfer train: error: config not found: det/mask-rcnn_vit-bse.py is neither a file nor a config ...

Exit statuses of every `mae-transfer` command and `tools/*.py` script:
    0  done;
    1  a bug, or a check that failed (`export`'s tolerance, `plan` when nothing fits): the traceback is printed;
    2  a fault of the user's (a missing file or folder, an unknown config key or type, an unknown checkpoint
       format, an image or video that cannot be decoded, a wrong argument): one line that names it and the fix.
`--debug` (any command, anywhere on its command line) or MAE_TRANSFER_DEBUG=1 prints the traceback of a user's
fault too.

The commands' `main(argv)` functions keep raising (SystemExit('message') or the exceptions below), so that a test
or a notebook calling them in-process sees the error; only the process entries (`mae-transfer`, `tools/*.py`,
`python -m mae_transfer.tools.X`) go through `run_command`. Only the standard library is imported here at module
level: tools/gpu_check.py runs before mmengine is installed.
"""
import os
import sys
import traceback
from typing import Callable, List, NoReturn, Optional, Sequence, Tuple

DEBUG_FLAG = '--debug'
# Warnings our dependencies raise on import that a user can do nothing about; shown, they push the one error line
# of a command down the screen. mmengine and mmcv import `pkg_resources` (setuptools < 81 is pinned for mmcv's
# build), which warns once per importing module.
KNOWN_DEPENDENCY_NOISE = (r'pkg_resources is deprecated as an API',)
DEBUG_VARIABLE = 'MAE_TRANSFER_DEBUG'
USER_ERROR_STATUS = 2


class UserError(Exception):
    """A fault the user causes and fixes (a misspelt name, an unreadable input): the message is the line shown,
    without a traceback, so it names what is wrong and what to do."""


def silence_known_dependency_noise() -> None:
    """Ignore `KNOWN_DEPENDENCY_NOISE` (called by `import mae_transfer`, before mmengine is imported)."""
    import warnings
    for message in KNOWN_DEPENDENCY_NOISE:
        warnings.filterwarnings('ignore', message=message, category=UserWarning)


def split_debug(argv: Sequence[str]) -> Tuple[List[str], bool]:
    """(argv without `--debug`, whether a traceback was asked for by the flag or the environment)."""
    debug = DEBUG_FLAG in argv or os.environ.get(DEBUG_VARIABLE, '') not in ('', '0')
    return [arg for arg in argv if arg != DEBUG_FLAG], debug


def user_error_message(error: BaseException) -> Optional[str]:
    """The line to show for a fault of the user's, or None for a bug (which keeps its traceback)."""
    if isinstance(error, SystemExit):  # the commands' own checks: SystemExit('message')
        return error.code if isinstance(error.code, str) else None
    if isinstance(error, (FileNotFoundError, NotADirectoryError)):
        # a path of the command line or of the config (a data_root, an annotation file); which one is in the text
        text = str(error) if error.filename is None or isinstance(error, UserError) else \
            f'{error.strerror}: {error.filename}'
        return text + synthetic_set_hint(text)
    if isinstance(error, UserError):
        return str(error)
    if isinstance(error, KeyError):  # mmengine's registries: "'X' is not in the mmdet::model registry"
        try:
            from mae_transfer.utils.registry_hints import missing_type_hint
        except ImportError:  # no mmengine yet (gpu_check): no registry either
            return None
        return missing_type_hint(error)
    return None


def synthetic_set_hint(text: str) -> str:
    """'; write it with `mae-transfer data synthetic det`' when `text` names a missing synthetic set of the tiny
    configs (their default data roots, e.g. data/synthetic_det/), else ''."""
    try:
        from mae_transfer.datasets.synthetic import SYNTHETIC_SETS
    except ImportError:  # gpu_check runs before the stack is installed
        return ''
    for task, spec in SYNTHETIC_SETS.items():
        if spec.default_root in text:
            return f'; the tiny configs\' synthetic set: write it with `mae-transfer data synthetic {task}`'
    return ''


def run_command(main: Callable[[List[str]], Optional[int]], program: str,
                argv: Optional[Sequence[str]] = None) -> NoReturn:
    """Run a command's `main(argv)` as a process and exit: status 2 with `<program>: error: <message>` on stderr
    for a fault of the user's, the traceback (status 1) for a bug; `main`'s return value otherwise (None is 0).

    Args:
        main: the command's `main(argv)`.
        program: how the command is named in the message, e.g. 'mae-transfer train'.
        argv: the arguments (default: sys.argv[1:]); `--debug` is taken out before `main` sees them.
    """
    argv, debug = split_debug(sys.argv[1:] if argv is None else argv)
    try:
        status = main(argv)
    except SystemExit as error:
        if not isinstance(error.code, str):  # argparse (2 after its usage line, 0 for --help), sys.exit(N)
            raise
        _report(error, program, debug)
    except Exception as error:  # noqa: BLE001 (sorted below: a bug is raised again)
        if user_error_message(error) is None:
            raise
        _report(error, program, debug)
    sys.exit(status)


def _report(error: BaseException, program: str, debug: bool) -> NoReturn:
    if debug:
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
    print(f'{program}: error: {user_error_message(error)}', file=sys.stderr, flush=True)
    sys.exit(USER_ERROR_STATUS)
