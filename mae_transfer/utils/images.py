"""Reading a user's image files: one decoder, one error, one skip policy for the whole toolkit.

    image = read_image('photo.jpg')                     # RGB uint8 [H, W, 3]; 'bgr' for OpenCV/mmcv code
    try:
        picture = load_rgb(path)                          # a PIL RGB image, for torchvision/timm transforms
    except UnreadableImageError as error:                 # "cannot read image PATH: REASON"
        log_skipped(error)                                # "skipped unreadable image PATH: REASON"

Every file goes through Pillow, decoded in full (a truncated JPEG fails here, not in a later transform), with
the EXIF orientation applied (a phone picture comes out upright, as OpenCV's `imread` shows it), and converted
to 8-bit RGB: gray, gray+alpha, palette, RGBA and CMYK files, 16-bit gray PNGs (scaled to 8 bits, as OpenCV
does, not clipped) and the first frame of an animated GIF. Any failure (missing, empty, truncated, not an
image, a symlink loop, a decompression bomb) raises `UnreadableImageError`, a ValueError naming the file.

The policy that goes with it: a long run (a training dataset, a hook, inference over a folder) logs
"skipped unreadable image PATH: REASON" and goes on; a command asked to process exactly that file lets the
error through, one line naming it.
"""
import io
import logging
from pathlib import Path
from typing import List, Sequence, Union

import numpy as np
from mmengine.logging import print_log
from PIL import Image, ImageOps, UnidentifiedImageError

from .user_errors import UserError

PathLike = Union[str, Path]
CHANNEL_ORDERS = ('rgb', 'bgr')
_SIXTEEN_BIT_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I')  # how Pillow opens 16-bit gray PNGs and TIFFs


class UnreadableImageError(ValueError, UserError):
    """An image file that cannot be decoded; the message is one line, "cannot read image PATH: REASON".

    Attributes:
        path: the file.
        reason: why, as the end of a sentence (Pillow's or the OS's message, or a plain description).
    """

    def __init__(self, path: PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = ' '.join(str(reason).split()) or 'unknown error'  # one line, whatever the decoder said
        super().__init__(f'cannot read image {self.path}: {self.reason}')

    def __reduce__(self):  # raised in a DataLoader worker, re-raised in the main process: keep both fields
        return type(self), (self.path, self.reason)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB [H, W, 3]; alpha is dropped (OpenCV's IMREAD_COLOR drops it too)."""
    if image.mode in _SIXTEEN_BIT_MODES:
        # convert('L') clips 16-bit values at 255 (a white picture); keep the top 8 bits, as OpenCV does
        gray = np.asarray(image, dtype=np.uint32) >> 8  # gray: [H, W]
        image = Image.fromarray(np.clip(gray, 0, 255).astype(np.uint8), mode='L')
    elif image.mode == 'P' and 'transparency' in image.info:
        image = image.convert('RGBA')  # palette + transparency goes through RGBA (Pillow warns otherwise)
    return image if image.mode == 'RGB' else image.convert('RGB')


def decode_rgb(data: bytes, path: PathLike) -> Image.Image:
    """Decode an image file's bytes (read by the caller, e.g. from a remote backend) to a PIL RGB image.

    Raises:
        UnreadableImageError: naming `path`.
    """
    if not data:
        raise UnreadableImageError(path, 'the file is empty (0 bytes)')
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # decodes everything now: a truncated file fails here; a GIF stays at its first frame
            return _to_rgb(ImageOps.exif_transpose(image))
    except UnidentifiedImageError as error:  # its message names an in-memory buffer: say it plainly
        raise UnreadableImageError(path, f'not an image Pillow can decode ({len(data)} bytes)') from error
    except Exception as error:  # Pillow's plugins raise many types on damaged data (OSError, SyntaxError, ...)
        raise UnreadableImageError(path, f'{error} (a damaged file of {len(data)} bytes)') from error


def load_rgb(path: PathLike) -> Image.Image:
    """An image file as a PIL RGB image (see the module docstring for the conversions).

    Raises:
        UnreadableImageError: the file is missing, cannot be opened or does not decode.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:  # missing, a folder, no permission, a symlink loop
        raise UnreadableImageError(path, error.strerror or str(error)) from error
    return decode_rgb(data, path)


def to_array(image: Image.Image, channel_order: str = 'rgb') -> np.ndarray:
    """A PIL RGB image as a contiguous uint8 array [H, W, 3] in `channel_order` ('rgb' or 'bgr')."""
    if channel_order not in CHANNEL_ORDERS:
        raise ValueError(f"channel_order must be one of {CHANNEL_ORDERS}, got {channel_order!r}")
    pixels = np.asarray(image, dtype=np.uint8)  # pixels: [H, W, 3] RGB
    return np.ascontiguousarray(pixels[..., ::-1] if channel_order == 'bgr' else pixels)


def read_image(path: PathLike, channel_order: str = 'rgb') -> np.ndarray:
    """An image file as uint8 [H, W, 3], channels in `channel_order` ('bgr' for OpenCV and mmcv pipelines).

    Raises:
        UnreadableImageError: the file is missing, cannot be opened or does not decode.
    """
    return to_array(load_rgb(path), channel_order)


def log_skipped(error: UnreadableImageError) -> None:
    """The line a long run logs when it skips a file: "skipped unreadable image PATH: REASON"."""
    print_log(f'skipped unreadable image {error.path}: {error.reason}', logger='current', level=logging.WARNING)


def log_skip_count(skipped: int, total: int, where: str) -> None:
    """One summary line after a pass over many files, when some were skipped."""
    if skipped:
        print_log(f'{where}: skipped {skipped} unreadable of {total} images (each named above)', logger='current',
                  level=logging.WARNING)


def first_readable(paths: Sequence[PathLike], count: int) -> List[Path]:
    """The first `count` of `paths` that decode, in order; each skipped file is logged. For long runs that need a
    few sample images (reconstruction pictures) from a user's folder, whose order the user does not choose."""
    found: List[Path] = []
    for path in map(Path, paths):
        if len(found) == count:
            break
        try:
            load_rgb(path)
        except UnreadableImageError as error:
            log_skipped(error)
            continue
        found.append(path)
    return found


def readable(paths: Sequence[PathLike]) -> List[Path]:
    """Those of `paths` that decode, in order; each skipped file is logged, then the count."""
    found = first_readable(paths, len(paths))
    log_skip_count(len(paths) - len(found), len(paths), 'reading images')
    return found


__all__ = ['UnreadableImageError', 'decode_rgb', 'first_readable', 'load_rgb', 'log_skip_count', 'log_skipped',
           'read_image', 'readable', 'to_array']
