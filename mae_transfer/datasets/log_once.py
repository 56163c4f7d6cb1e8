"""Log a line about a file once for the whole run, however many DataLoader workers (or ranks on a node) meet it.

Each DataLoader worker is its own process, so a per-process "seen" set logs a bad file once per worker (twice
with 2 workers, and again in the fresh workers of every epoch). The processes of one run share a folder instead:
the first to create the marker file of a key (an atomic `O_CREAT | O_EXCL`) logs, the others stay quiet.

The folder's name is put in the environment by the first process that asks for it, and the main process asks
when it builds the dataset (`claim_run_folder` from the datasets' constructors), before it forks or spawns
workers: both inherit the environment. Under torchrun the name holds TORCHELASTIC_RUN_ID, so the ranks of one
node share it too and an elastic restart does not log the same file again. The process that chose the folder
removes it at exit.

    log_once(str(path), f'skipped unreadable image {path}: {reason}')
"""
import atexit
import hashlib
import logging
import os
import shutil
import tempfile

from mmengine.logging import print_log

from ..utils.images import UnreadableImageError, log_skipped

FOLDER_VARIABLE = 'MAE_TRANSFER_LOG_ONCE_DIR'


def claim_run_folder() -> str:
    """The run's marker folder, chosen (and put in the environment) by the first process that asks."""
    folder = os.environ.get(FOLDER_VARIABLE)
    if folder:
        return folder
    run_id = os.environ.get('TORCHELASTIC_RUN_ID')
    if run_id:  # shared by the ranks of one torchrun job on this node; not removed (another rank may still use it)
        folder = os.path.join(tempfile.gettempdir(), f'mae_transfer_log_once_{os.getuid()}_{run_id}')
    else:
        folder = tempfile.mkdtemp(prefix='mae_transfer_log_once_')
        atexit.register(shutil.rmtree, folder, True)
    os.environ[FOLDER_VARIABLE] = folder
    return folder


def first_time(key: str) -> bool:
    """Whether this is the first time any process of the run asks about `key` (and from now on it is not)."""
    folder = claim_run_folder()
    os.makedirs(folder, exist_ok=True)
    marker = os.path.join(folder, hashlib.sha1(key.encode('utf-8', 'surrogateescape')).hexdigest())
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    except OSError:  # a full or read-only temp folder: log rather than lose the message
        return True
    return True


def log_once(key: str, message: str, level: int = logging.WARNING) -> bool:
    """Log `message` if no process of the run has logged for `key` yet; whether it was logged."""
    if not first_time(key):
        return False
    print_log(message, logger='current', level=level)
    return True


def log_skipped_once(error: UnreadableImageError) -> None:
    """`mae_transfer.utils.images.log_skipped`'s line ("skipped unreadable image PATH: REASON"), once per file."""
    if first_time(f'skipped image {error.path}'):
        log_skipped(error)


__all__ = ['FOLDER_VARIABLE', 'claim_run_folder', 'first_time', 'log_once', 'log_skipped_once']
