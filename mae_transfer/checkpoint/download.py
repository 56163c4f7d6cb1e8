"""Download one large file over HTTP(S): progress bar, resume of broken transfers, SHA-256 check, atomic rename.

The bytes go to `<dest>.part`. A later call (or an automatic retry) asks the server for the rest with
`Range: bytes=<size of .part>-`; a server that answers 200 instead of 206 ignored the range, and the file
starts over. Only a complete file whose SHA-256 matches (when one is known) is renamed to `dest`, so
`dest` never exists half-written.

`http.client` does not raise when a connection closes before Content-Length bytes arrived (`read(n)` just
returns b''), so the byte count is checked here: a short transfer is an interruption, not a success.
"""
import hashlib
import http.client
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional, Union

from tqdm import tqdm

CHUNK_SIZE = 1 << 20


class DownloadInterrupted(IOError):
    """The transfer stopped early; the bytes so far are kept in the `.part` file for a resume."""


class ChecksumMismatch(IOError):
    """The downloaded file's SHA-256 is not the expected one (the file is deleted)."""


def sha256_of(path: Union[str, os.PathLike], chunk_size: int = CHUNK_SIZE) -> str:
    """Hex SHA-256 of a file, read in chunks.

    Args:
        path: the file.
        chunk_size: bytes per read.
    """
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b''):
            digest.update(chunk)
    return digest.hexdigest()


def part_path(dest: Union[str, os.PathLike]) -> Path:
    """Where the bytes of an unfinished download of `dest` are kept."""
    dest = Path(dest)
    return dest.with_name(dest.name + '.part')


def download_file(url: str, dest: Union[str, os.PathLike], sha256: Optional[str] = None, retries: int = 3,
                  timeout: float = 60.0, progress: bool = True) -> Path:
    """Download `url` to `dest`, resuming from `<dest>.part` when an earlier attempt broke off.

    Args:
        url: http(s) address.
        dest: final file; its folder is created.
        sha256: expected hex digest, or None when unknown (then nothing is verified).
        retries: further attempts after an interrupted transfer, each resuming where the last one stopped.
        timeout: seconds without data before an attempt counts as interrupted.
        progress: draw a tqdm progress bar (on stderr).

    Returns:
        `dest`.

    Raises:
        DownloadInterrupted: every attempt broke off; the `.part` file is kept for the next call.
        ChecksumMismatch: the complete file has another SHA-256; it is deleted.
    """
    dest = Path(dest)
    if dest.is_file():
        _verify(dest, sha256, remove_on_mismatch=False)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    for attempt in range(retries + 1):
        try:
            _fetch_into(url, part, timeout=timeout, progress=progress, desc=dest.name)
            break
        except (DownloadInterrupted, ConnectionError, socket.timeout, http.client.HTTPException,
                urllib.error.URLError) as error:
            if isinstance(error, urllib.error.HTTPError):
                raise  # 404, 403 ...: retrying does not help
            if attempt == retries:
                size = part.stat().st_size if part.exists() else 0
                raise DownloadInterrupted(f'download of {url} broke off ({error}); {size} bytes kept in {part}, '
                                          'run the same command again to resume') from error
    _verify(part, sha256, remove_on_mismatch=True)
    os.replace(part, dest)
    return dest


def _fetch_into(url: str, part: Path, timeout: float, progress: bool, desc: str) -> None:
    """One attempt: append the missing bytes to `part`, or start it over when the server ignores Range."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={'Range': f'bytes={offset}-'} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:  # nothing left to send: complete already, or the file changed
            total = _total_from_content_range(error.headers.get('Content-Range'))
            if total == offset:
                return
            part.unlink()  # the .part does not fit the remote file any more
            raise DownloadInterrupted(f'server refused to resume at byte {offset}; starting over') from error
        raise
    with response:
        if offset and response.status != 206:
            offset = 0  # the server ignored the range and sends the whole file
        length = response.headers.get('Content-Length')
        expected = int(length) if length is not None else None
        total = offset + expected if expected is not None else None
        received = 0
        with open(part, 'ab' if offset else 'wb') as handle, \
                tqdm(total=total, initial=offset, unit='B', unit_scale=True, unit_divisor=1024, desc=desc,
                     disable=not progress, leave=False) as bar:
            while True:
                chunk = response.read(CHUNK_SIZE)
                if not chunk:
                    break
                handle.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if expected is not None and received < expected:
        raise DownloadInterrupted(f'connection closed after {offset + received} of {total} bytes')


def _total_from_content_range(value: Optional[str]) -> Optional[int]:
    """The total size in a 'bytes */1234' or 'bytes 0-99/1234' header."""
    if not value or '/' not in value:
        return None
    total = value.rsplit('/', 1)[1].strip()
    return int(total) if total.isdigit() else None


def _verify(path: Path, sha256: Optional[str], remove_on_mismatch: bool) -> None:
    if sha256 is None:
        return
    actual = sha256_of(path)
    if actual.lower() != sha256.lower():
        if remove_on_mismatch:
            path.unlink()
        raise ChecksumMismatch(f'{path}: SHA-256 {actual} does not match the expected {sha256}'
                               + (' (deleted)' if remove_on_mismatch else ''))


__all__ = ['ChecksumMismatch', 'DownloadInterrupted', 'download_file', 'part_path', 'sha256_of']
