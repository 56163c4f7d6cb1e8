"""Frame sources and sinks for running a model over a video or a folder of images (`mae-transfer infer`).

    with VideoReader('in.mp4') as video, VideoWriter('out.mp4', video.info.fps, (video.info.width,
            video.info.height)) as out, JsonLinesWriter('out.jsonl') as records:
        for index, frame in enumerate(progress(video, video.info.frame_count, 'in.mp4')):
            out.write(draw(frame, predict(frame)))             # frames are BGR uint8 [H, W, 3]
            records.write({'frame': index, 'score': score})

Frames are BGR uint8 arrays of shape [H, W, 3], OpenCV's convention, in and out. Only the I/O lives here: no
config, no model. Problems the user can fix (a truncated recording, a codec this OpenCV build cannot decode, a
folder without pictures) raise `MediaError`, one line naming the file and what to do; a truncated video first
yields every frame it decoded, so what the caller wrote from them is kept.
"""
import json
import math
import os
import re
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, List, Optional, Tuple, TypeVar, Union

import cv2
import numpy as np
from tqdm import tqdm

from ..utils.images import UnreadableImageError  # noqa: F401 (raised by read_image; importable from here)
from ..utils.images import read_image as read_any_image

from ..utils.user_errors import UserError

PathLike = Union[str, Path]
T = TypeVar('T')

VIDEO_SUFFIXES: Tuple[str, ...] = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v', '.mpg', '.mpeg', '.wmv', '.flv')
IMAGE_SUFFIXES: Tuple[str, ...] = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')

# Suffix of a written video -> the FOURCC OpenCV's bundled FFmpeg encodes without extra libraries.
_WRITER_FOURCC = {'.mp4': 'mp4v', '.m4v': 'mp4v', '.mov': 'mp4v', '.avi': 'MJPG'}
_REENCODE = 're-encode it, e.g. `ffmpeg -i {path} -c:v libx264 -pix_fmt yuv420p fixed.mp4`'
# How much of a file the container probe reads: headers live in the first bytes (AVI 'hdrl', MP4 'ftyp' and,
# for "fast start" files, 'moov'); a 'moov' written last is found by walking the top-level boxes, not by reading.
_PROBE_BYTES = 4 << 20
_MP4_VIDEO_CODECS = (b'avc1', b'avc3', b'hvc1', b'hev1', b'mp4v', b'av01', b'vp09', b'vp08', b's263', b'mjpa',
                     b'mjpb', b'jpeg', b'apcn', b'apch', b'apcs', b'apco', b'ap4h')
_MP4_CONTAINERS = (b'moov', b'trak', b'mdia', b'minf', b'stbl')  # the boxes between 'moov' and 'stsd'


class MediaError(ValueError, UserError):
    """A video or image folder the user has to fix (truncated, unsupported codec, empty folder): the message is one
    line naming the file and the fix, fit to show as is, without a traceback."""


def is_video(path: PathLike) -> bool:
    """Whether a path names a video, by its suffix (case-insensitive, `VIDEO_SUFFIXES`): a folder or an image is
    read with `list_images`, a video with `VideoReader`."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def list_images(folder: PathLike) -> List[Path]:
    """The image files directly in a folder (not in sub-folders), sorted by file name, so that frames saved as
    `frame_000001.png`, ... come in order (number them with zero padding: 'frame_10' sorts before 'frame_2').

    Suffixes are matched case-insensitively (`IMAGE_SUFFIXES`); hidden files ('.name', e.g. macOS '._x.jpg'
    resource forks, which are not pictures) are skipped.

    Raises:
        FileNotFoundError: the folder does not exist.
        MediaError: it is a file, or it holds no image.
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f'image folder {folder} does not exist')
    if not folder.is_dir():
        raise MediaError(f'{folder} is not a folder: pass a folder of images or a video ({", ".join(VIDEO_SUFFIXES)})')
    images = sorted((p for p in folder.iterdir()
                     if p.is_file() and not p.name.startswith('.') and p.suffix.lower() in IMAGE_SUFFIXES),
                    key=lambda p: p.name)
    if not images:
        raise MediaError(f'folder {folder} holds no image: the files read are {", ".join(IMAGE_SUFFIXES)} '
                         '(any case), directly in the folder')
    return images


def read_image(path: PathLike) -> np.ndarray:
    """An image file as BGR uint8 [H, W, 3], OpenCV's convention (the toolkit's one image reader,
    `mae_transfer.utils.images.read_image`: EXIF orientation applied, gray, 16-bit, palette and alpha converted).

    Raises:
        UnreadableImageError: a ValueError naming the file: missing, empty, truncated or not an image.
    """
    return read_any_image(path, channel_order='bgr')


@dataclass
class VideoInfo:
    """What a video declares about itself, for sizing the output video and the progress bar.

    Attributes:
        fps: frames per second (0.0 when the container does not say).
        width: frame width in pixels, as decoded (the frames yielded are [height, width, 3]).
        height: frame height in pixels, as decoded.
        frame_count: the number of frames the container declares, 0 when unknown; an estimate for containers
            without a frame index (OpenCV derives it from duration x fps), so it can be off by a frame or two.
        codec: the FOURCC as 4 printable characters ('mp4v', 'avc1', 'MJPG', 'XVID', ...), read from the file's
            header where it is an MP4/MOV or AVI (the name tools such as ffprobe show), else what OpenCV reports;
            '' when unknown.
    """
    fps: float
    width: int
    height: int
    frame_count: int
    codec: str


def _fourcc_text(code: bytes) -> str:
    """4 bytes as a FOURCC string, '' when not 4 printable ASCII characters (0, BI_RGB, garbage)."""
    text = code.decode('latin-1')
    return text if len(code) == 4 and text.strip() and all(32 <= b < 127 for b in code) else ''


@dataclass
class _Container:
    """What a cheap look at a file's header tells: its container, its video codec, and what is missing."""
    kind: str = ''  # 'mp4' (MP4/MOV, ISO base media), 'avi' or '' (not recognised)
    codec: str = ''
    problem: str = ''  # why the file cannot be read, as the end of a sentence; '' when the header looks whole


def _mp4_boxes(data: bytes, start: int, end: int) -> Iterator[Tuple[bytes, int, int]]:
    """(type, content start, content end) of the ISO boxes in data[start:end]; stops at the first box that does
    not fit (its end is clipped to the data, so a cut box is still searched)."""
    while start + 8 <= end:
        size, kind = struct.unpack('>I4s', data[start:start + 8])
        header = 8
        if size == 1 and start + 16 <= end:
            size, header = struct.unpack('>Q', data[start + 8:start + 16])[0], 16
        elif size == 0:
            size = end - start
        if size < header:
            return
        yield kind, start + header, min(start + size, end)
        start += size


def _mp4_video_codec(moov: bytes) -> str:
    """The sample entry type of the video track's 'stsd' box in a 'moov' box's bytes: the track whose 'mdia' box
    has a 'hdlr' of type 'vide' (a QuickTime 'minf' holds a data 'hdlr' too, which says nothing of the track)."""
    def walk(start: int, end: int, parent: bytes, handler: bytes) -> str:
        boxes = list(_mp4_boxes(moov, start, end))
        if parent == b'mdia':
            handler = next((moov[content + 8:content + 12] for kind, content, stop in boxes
                            if kind == b'hdlr' and stop - content >= 12), handler)
        for kind, content, stop in boxes:
            if kind in _MP4_CONTAINERS:
                found = walk(content, stop, kind, handler)
                if found:
                    return found
            elif kind == b'stsd' and handler in (b'vide', b'') and stop - content >= 16:
                return _fourcc_text(moov[content + 12:content + 16])  # version+flags, count, entry size, type
        return ''
    return walk(0, len(moov), b'moov', b'')


def _probe_mp4(handle: IO[bytes], size: int, head: bytes) -> _Container:
    """Walk the top-level boxes by seeking (cheap on any size): 'moov', the index without which no frame can be
    located, is written last by most recorders (and by OpenCV's 'mp4v' writer), so a cut file has none."""
    moov, offset = None, 0
    while offset + 8 <= size:
        handle.seek(offset)
        header = handle.read(16)
        box_size, kind = struct.unpack('>I4s', header[:8])
        if box_size == 1 and len(header) == 16:
            box_size = struct.unpack('>Q', header[8:16])[0]
        elif box_size == 0:
            box_size = size - offset
        if box_size < 8:
            break
        if kind == b'moov':
            if offset + box_size > size:
                moov = b''
                break
            handle.seek(offset)
            moov = handle.read(min(box_size, 4 * _PROBE_BYTES))[8:]
            break
        offset += box_size
    if moov is None or moov == b'':
        codec = next((c.decode() for c in _MP4_VIDEO_CODECS if c in head), '')
        cut = 'cut inside it' if moov == b'' else 'missing'
        return _Container('mp4', codec, f"its index (the MP4 'moov' atom) is {cut}: the file is truncated, e.g. a "
                                        'recording that was interrupted before it was closed')
    return _Container('mp4', _mp4_video_codec(moov))


def _probe_avi(size: int, head: bytes) -> _Container:
    """The video stream's codec from the 'hdrl' list: 'strf' biCompression (what decoders use), else the 'strh'
    fccHandler; and whether the file is shorter than the size its RIFF header declares."""
    codec = ''
    for match in re.finditer(b'strh', head):
        strh = match.start()
        if head[strh + 8:strh + 12] != b'vids':
            continue
        handler = _fourcc_text(head[strh + 12:strh + 16])
        strf = head.find(b'strf', strh)
        compression = _fourcc_text(head[strf + 24:strf + 28]) if strf >= 0 else ''
        codec = compression or handler
        break
    declared = struct.unpack('<I', head[4:8])[0] + 8
    problem = f'the file is truncated ({size} of the {declared} bytes its header declares)' if size < declared else ''
    return _Container('avi', codec, problem)


def _probe_container(path: Path) -> _Container:
    """Read a video's header without decoding, to name the codec and to tell a cut file from a foreign one."""
    try:
        size = path.stat().st_size
        if size == 0:
            return _Container(problem='the file is empty (0 bytes)')
        with open(path, 'rb') as handle:
            head = handle.read(_PROBE_BYTES)
            if head[:4] == b'RIFF' and head[8:12] == b'AVI ':
                return _probe_avi(size, head)
            if head[4:8] in (b'ftyp', b'moov', b'mdat', b'free', b'wide', b'skip'):
                return _probe_mp4(handle, size, head)
    except (OSError, struct.error):
        pass
    return _Container()


class VideoReader:
    """A video's frames, in order, as BGR uint8 [height, width, 3] arrays, read with `cv2.VideoCapture`.

    The first frame is decoded when the reader is made, so a video that cannot be read fails before the caller
    creates any output. Iterate once; use as a context manager (or call `close`) to release the capture early.

        with VideoReader('in.mp4') as video:
            for frame in video: ...

    A video whose frames stop before the count its container declares (a truncated or corrupt file) yields every
    frame it decoded, then raises MediaError, so what was written from them is kept and the user is told.

    Args:
        path: the video file.

    Raises:
        FileNotFoundError: the file does not exist (IsADirectoryError: it is a folder).
        MediaError: OpenCV cannot open it (not a video, an MP4 without its 'moov' index, a codec this build lacks)
            or cannot decode its first frame; the message names the codec when the header gives it.
    """

    def __init__(self, path: PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            if self.path.exists():
                raise IsADirectoryError(f'video {self.path} is a folder, not a file: read it with list_images')
            raise FileNotFoundError(f'video {self.path} does not exist')
        self._capture: Optional[cv2.VideoCapture] = cv2.VideoCapture(str(self.path))
        self._iterated = False
        try:
            self._first = self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> np.ndarray:
        capture = self._capture
        assert capture is not None
        container = _probe_container(self.path)
        if not capture.isOpened():
            raise MediaError(self._open_failure(container))
        reported = int(capture.get(cv2.CAP_PROP_FOURCC))
        codec = container.codec or _fourcc_text((reported & 0xFFFFFFFF).to_bytes(4, 'little'))
        ok, frame = capture.read()
        if not ok or frame is None:
            named = f"codec '{codec}' is" if codec else 'its codec is'
            raise MediaError(f'cannot decode video {self.path}: {named} not supported by this OpenCV build (or the '
                             f'stream is corrupt: not even its first frame decodes); '
                             f'{_REENCODE.format(path=self.path)}')
        fps = capture.get(cv2.CAP_PROP_FPS)
        count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        # The decoded frame, not CAP_PROP_FRAME_WIDTH/HEIGHT, gives the size: OpenCV applies a rotation tag.
        self.info = VideoInfo(fps=float(fps) if math.isfinite(fps) and fps > 0 else 0.0,
                              width=int(frame.shape[1]), height=int(frame.shape[0]),
                              frame_count=int(count) if math.isfinite(count) and count > 0 else 0, codec=codec)
        return frame

    def _open_failure(self, container: _Container) -> str:
        what = f'cannot open video {self.path}'
        if container.problem:
            repair = ' (e.g. with untrunc)' if container.kind == 'mp4' else ''
            return f'{what}: {container.problem}; copy or record it again, or repair it{repair}'
        if container.codec:
            return (f"{what}: codec '{container.codec}' is not supported by this OpenCV build (or the file is "
                    f'damaged); {_REENCODE.format(path=self.path)}')
        return (f'{what}: it is not a video OpenCV can read (no known container header, or a file cut before its '
                f"index, e.g. an MP4 without its 'moov' atom); check that it plays, or "
                f'{_REENCODE.format(path=self.path)}')

    @staticmethod
    def tolerance(declared: int) -> int:
        """How many frames short of the declared count still counts as complete: max(2, 1 %). Containers without
        a frame index (MKV, WebM, some MP4 with edit lists) declare duration x fps, which rounding and a last
        frame's duration put off by one or two frames; a truncated file misses far more."""
        return max(2, math.ceil(declared / 100))

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._iterated:
            raise RuntimeError(f'VideoReader({self.path}) can be iterated once; make a new reader to read it again')
        self._iterated = True
        return self._frames()

    def _frames(self) -> Iterator[np.ndarray]:
        try:
            frame: Optional[np.ndarray] = self._first
            self._first = None
            decoded = 0
            while frame is not None:
                decoded += 1
                yield frame
                ok, frame = self._capture.read() if self._capture is not None else (False, None)
                if not ok:
                    frame = None
            declared = self.info.frame_count
            if declared and decoded < declared - self.tolerance(declared):
                raise MediaError(f'video {self.path} ended after {decoded} of {declared} frames: the file is '
                                 f'truncated or corrupt (the {decoded} frames before were read); copy or record it '
                                 'again for the rest')
        finally:
            self.close()

    def close(self) -> None:
        """Release the capture (its file handle and decoder); safe to call twice."""
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def __enter__(self) -> 'VideoReader':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class VideoWriter:
    """Write BGR uint8 [height, width, 3] frames to a video: '.mp4' (also .m4v, .mov) with FOURCC 'mp4v', '.avi'
    with 'MJPG', the codecs OpenCV's bundled FFmpeg encodes everywhere (H.264 needs an encoder it may lack).

    Released on exit, on an exception too: an MP4's index is written at release, so a run that fails midway leaves
    a video playable as far as it got.

    Args:
        path: the output file; its parent folder is created.
        fps: frames per second, > 0 (pass the input video's `info.fps` to keep its speed).
        size: (width, height) of every frame, OpenCV's order; frames are [height, width, 3].

    Raises:
        MediaError: the suffix is not one of the above, or OpenCV cannot open the writer (e.g. the path is a
            folder or cannot be written).
    """

    def __init__(self, path: PathLike, fps: float, size: Tuple[int, int]):
        self.path = Path(path)
        self.size = (int(size[0]), int(size[1]))
        if not (fps > 0 and math.isfinite(fps)):
            raise ValueError(f'fps must be a positive number, got {fps} for {self.path}')
        if min(self.size) <= 0:
            raise ValueError(f'size must be (width, height) > 0, got {size} for {self.path}')
        fourcc = _WRITER_FOURCC.get(self.path.suffix.lower())
        if fourcc is None:
            raise MediaError(f'cannot write video {self.path}: name it {" or ".join(_WRITER_FOURCC)}')
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.frames_written = 0
        self._writer: Optional[cv2.VideoWriter] = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*fourcc),
                                                                  float(fps), self.size)
        if not self._writer.isOpened():
            self._writer = None
            raise MediaError(f"cannot write video {self.path}: OpenCV cannot open a '{fourcc}' writer there (is the "
                             'path a folder, or not writable?); choose another output path')

    def write(self, frame: np.ndarray) -> None:
        """Append one frame, BGR uint8 [height, width, 3] of the size given at construction.

        Raises:
            ValueError: another shape or dtype (OpenCV would drop such a frame without a word).
        """
        width, height = self.size
        if self._writer is None:
            raise ValueError(f'video {self.path} is closed')
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.shape != (height, width, 3):
            got = f'{frame.dtype} {list(frame.shape)}' if isinstance(frame, np.ndarray) else type(frame).__name__
            raise ValueError(f'frame {got} does not fit video {self.path}: it needs uint8 [{height}, {width}, 3] '
                             f'(width {width}, height {height})')
        self._writer.write(frame)
        self.frames_written += 1

    def close(self) -> None:
        """Finish the file (an MP4's index is written here); safe to call twice."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> 'VideoWriter':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress(iterable: Iterable[T], total: Optional[int], desc: str) -> Iterable[T]:
    """`iterable` wrapped in a tqdm bar in frames/s on stderr, so stdout stays free for results (the bar is returned:
    `set_postfix`, `close`). `total` None or 0 when unknown (a video that declares no frame count) shows a count
    without an end.

    Set the environment variable MAE_TRANSFER_NO_PROGRESS=1 to turn the bar off (logs, CI); the items still flow.
    """
    disable = os.environ.get('MAE_TRANSFER_NO_PROGRESS') == '1'
    return tqdm(iterable, total=total or None, desc=desc, unit='frame', file=sys.stderr, dynamic_ncols=True,
                mininterval=0.5, disable=disable)


def _jsonable(value: Any) -> Any:
    """Python values json can write: numpy scalars and arrays (and anything with `tolist`, e.g. a tensor) become
    numbers and lists, floats are rounded to 4 decimals, NaN and infinities become null, paths strings."""
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, (str, bool, int)) or value is None:
        return value
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, 'tolist'):  # numpy scalar or array, torch tensor
        return _jsonable(value.tolist())
    raise TypeError(f'cannot write {type(value).__name__} as JSON: {value!r}')


class JsonLinesWriter:
    """One compact JSON object per line (JSON Lines), flushed line by line so that a run that crashes keeps every
    record it wrote.

    Numpy scalars and arrays are converted to Python numbers and lists; floats are rounded to 4 decimals (scores
    and box coordinates need no more, and the lines stay short); NaN/inf become null so every line is valid JSON.

        with JsonLinesWriter('out/predictions.jsonl') as records:
            records.write({'frame': 0, 'boxes': boxes_array})

    Args:
        path: the output file, overwritten; its parent folder is created.
    """

    def __init__(self, path: PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records_written = 0
        self._file: Optional[IO[str]] = open(self.path, 'w', encoding='utf-8')

    def write(self, record: dict) -> None:
        """Append `record` as one line and flush it."""
        if self._file is None:
            raise ValueError(f'{self.path} is closed')
        line = json.dumps(_jsonable(record), separators=(',', ':'), ensure_ascii=False, allow_nan=False)
        self._file.write(line + '\n')
        self._file.flush()
        self.records_written += 1

    def close(self) -> None:
        """Close the file; safe to call twice."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> 'JsonLinesWriter':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
