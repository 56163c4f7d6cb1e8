"""Never leave a torn checkpoint: local files are written to a temporary name and renamed into place.

mmengine writes a checkpoint with `LocalBackend.put` straight into its final path and `last_checkpoint` with
a plain `open(..., 'w')`, so a crash (or SIGKILL, or a full disk) during a save leaves a truncated file that
the next `--resume` picks up and fails on. Importing `mae_transfer` installs two small changes:

- `LocalBackend.put` / `put_text` write `<name>.tmp-<pid>`, fsync it and `os.replace` it onto `<name>`:
  the old file stays intact until the new one is complete (rename is atomic on POSIX and Windows).
- The Runner's `find_latest_checkpoint` accepts `last_checkpoint` only when it names an existing, non-empty
  file; otherwise (torn or missing pointer) it falls back to the newest complete `epoch_N.pth` / `iter_N.pth`
  of the work dir and says so.
"""
import os
import os.path as osp
import re
from pathlib import Path
from typing import Optional, Union

import mmengine.runner.runner as mmengine_runner
from mmengine.fileio.backends.local_backend import LocalBackend
from mmengine.logging import print_log


def atomic_write(data: Union[bytes, str], path: Union[str, Path], encoding: str = 'utf-8') -> None:
    """Write `data` to `path` so that readers see either the old file or the whole new one."""
    path = str(path)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    tmp_path = f'{path}.tmp-{os.getpid()}'
    try:
        with open(tmp_path, 'wb') as f:
            f.write(data.encode(encoding) if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        if osp.exists(tmp_path):
            os.remove(tmp_path)


def _put(self: LocalBackend, obj: bytes, filepath: Union[str, Path]) -> None:
    atomic_write(obj, filepath)


def _put_text(self: LocalBackend, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
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


def install() -> None:
    """Make mmengine's local checkpoint writes atomic and its resume lookup robust (idempotent)."""
    LocalBackend.put = _put
    LocalBackend.put_text = _put_text
    mmengine_runner.find_latest_checkpoint = find_latest_checkpoint
