"""Heatmap codecs for top-down pose: keypoints in the input crop <-> Gaussian heatmaps (plain numpy).

Two codecs, as in SimpleBaseline / ViTPose:

- `MSRAHeatmap`: the classic one. Heatmap pixel j sits at input pixel `j * stride` (stride = input / heatmap,
  4 for 256x192 -> 64x48). `unbiased=False` centres the Gaussian on the rounded keypoint and decodes with the
  quarter-pixel shift towards the higher neighbour; `unbiased=True` (DARK, Zhang et al. 2020) draws the Gaussian
  at the exact sub-pixel position and decodes with a Newton step on the log of the blurred heatmap.
- `UDPHeatmap`: unbiased data processing (Huang et al. 2020): input and heatmap share their corner pixels,
  heatmap = input * (heatmap_size - 1) / (input_size - 1), exact sub-pixel Gaussian, DARK-style decoding. Pair it
  with `TopdownAffine(use_udp=True)`; this is what the ViTPose recipe uses.

Both encode keypoints `[K, 2]` (x, y in input pixels) with visibility `[K]` into heatmaps `[K, H, W]` and
per-keypoint target weights `[K]` (visible and inside the map), and decode heatmaps back into input-pixel
keypoints `[K, 2]` and scores `[K]` (the heatmap maxima). Sizes are (width, height), as in mmpose.
Both are registered in TASK_UTILS and built with `build_module(TASK_UTILS, cfg)` (`mae_transfer.utils.builder`).
"""
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from ..registry import TASK_UTILS


def gaussian_heatmaps(centres: np.ndarray, visible: np.ndarray, heatmap_size: Tuple[int, int], sigma: float,
                      unbiased: bool) -> Tuple[np.ndarray, np.ndarray]:
    """One Gaussian per keypoint, cut to the (6 sigma + 1)^2 window around the rounded centre.

    Args:
        centres: keypoints in heatmap pixels [K, 2].
        visible: > 0 for labelled keypoints [K].
        heatmap_size: (W, H).
        sigma: Gaussian standard deviation in heatmap pixels.
        unbiased: centre the Gaussian on the exact position (else on the rounded one).

    Returns:
        heatmaps [K, H, W] float32 (peak 1), weights [K] float32 (0 where unlabelled or the window misses the map).
    """
    width, height = heatmap_size
    num = centres.shape[0]
    heatmaps = np.zeros((num, height, width), dtype=np.float32)
    weights = (np.asarray(visible, dtype=np.float32).reshape(num) > 0).astype(np.float32)
    radius = int(3 * sigma)
    xs = np.arange(width, dtype=np.float32)  # [W]
    ys = np.arange(height, dtype=np.float32)[:, None]  # [H, 1]
    for k in range(num):
        if weights[k] == 0 or not np.all(np.isfinite(centres[k])):
            weights[k] = 0
            continue
        mu = np.floor(centres[k] + 0.5).astype(np.int64)  # rounded centre (x, y)
        left, top = mu - radius
        right, bottom = mu + radius + 1
        if left >= width or top >= height or right <= 0 or bottom <= 0:
            weights[k] = 0
            continue
        cx, cy = (centres[k] if unbiased else mu).astype(np.float32)
        window = (np.abs(xs - mu[0]) <= radius) & (np.abs(ys - mu[1]) <= radius)  # [H, W]
        heatmaps[k] = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma ** 2)) * window
    return heatmaps, weights


def heatmap_maximum(heatmaps: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Integer arg-max location [K, 2] (x, y) and value [K] per map of `heatmaps` [K, H, W]; -1 where max <= 0."""
    num, height, width = heatmaps.shape
    flat = heatmaps.reshape(num, -1)  # [K, H * W]
    index = flat.argmax(axis=1)
    scores = flat[np.arange(num), index]
    locations = np.stack([index % width, index // width], axis=1).astype(np.float32)  # [K, 2]
    locations[scores <= 0] = -1
    return locations, scores


def blur_heatmaps(heatmaps: np.ndarray, kernel: int) -> np.ndarray:
    """Gaussian-blur each map [K, H, W], keeping its maximum (DARK's modulation)."""
    out = np.empty_like(heatmaps)
    for k, heatmap in enumerate(heatmaps):
        peak = heatmap.max()
        blurred = cv2.GaussianBlur(heatmap, (kernel, kernel), 0)
        out[k] = blurred * (peak / max(float(blurred.max()), 1e-12))
    return out


def refine_newton(locations: np.ndarray, heatmaps: np.ndarray, blur_kernel: int) -> np.ndarray:
    """Sub-pixel refinement: one Newton step on log(heatmap) at the integer maximum (DARK / UDP decoding).

    A Gaussian's log is a quadratic, so the step lands on its exact centre; the blur first makes a network's
    output Gaussian-like. Keypoints on the border row/column are left as they are.
    """
    maps = blur_heatmaps(heatmaps, blur_kernel) if blur_kernel > 0 else heatmaps
    logs = np.log(np.clip(maps, 1e-10, None))  # [K, H, W]
    height, width = logs.shape[1:]
    refined = locations.copy()
    for k, (x, y) in enumerate(locations.astype(np.int64)):
        if not (1 <= x < width - 1 and 1 <= y < height - 1):
            continue
        lg = logs[k]
        dx = 0.5 * (lg[y, x + 1] - lg[y, x - 1])
        dy = 0.5 * (lg[y + 1, x] - lg[y - 1, x])
        dxx = lg[y, x + 1] - 2 * lg[y, x] + lg[y, x - 1]
        dyy = lg[y + 1, x] - 2 * lg[y, x] + lg[y - 1, x]
        dxy = 0.25 * (lg[y + 1, x + 1] - lg[y + 1, x - 1] - lg[y - 1, x + 1] + lg[y - 1, x - 1])
        hessian = np.array([[dxx, dxy], [dxy, dyy]], dtype=np.float64)
        if abs(np.linalg.det(hessian)) < 1e-12:
            continue
        offset = -np.linalg.solve(hessian, np.array([dx, dy]))
        refined[k] += np.clip(offset, -1.0, 1.0)
    return refined


def refine_quarter(locations: np.ndarray, heatmaps: np.ndarray) -> np.ndarray:
    """Classic decoding: move a quarter pixel towards the higher neighbour on each axis."""
    height, width = heatmaps.shape[1:]
    refined = locations.copy()
    for k, (x, y) in enumerate(locations.astype(np.int64)):
        if not (0 <= x < width and 0 <= y < height):
            continue
        if 0 < x < width - 1:
            refined[k, 0] += 0.25 * np.sign(heatmaps[k, y, x + 1] - heatmaps[k, y, x - 1])
        if 0 < y < height - 1:
            refined[k, 1] += 0.25 * np.sign(heatmaps[k, y + 1, x] - heatmaps[k, y - 1, x])
    return refined


class _HeatmapCodec:
    """Shared size handling. `use_udp` tells the pipeline and the estimator which affine convention applies."""

    use_udp = False

    def __init__(self, input_size: Sequence[int], heatmap_size: Sequence[int], sigma: float = 2.0,
                 blur_kernel_size: int = 11) -> None:
        self.input_size = (int(input_size[0]), int(input_size[1]))  # (W, H)
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))
        self.sigma = float(sigma)
        self.blur_kernel_size = int(blur_kernel_size)

    def input_to_heatmap(self, keypoints: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def heatmap_to_input(self, keypoints: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(input_size={self.input_size}, heatmap_size={self.heatmap_size}, '
                f'sigma={self.sigma})')


@TASK_UTILS.register_module()
class MSRAHeatmap(_HeatmapCodec):
    """Classic Gaussian heatmaps (SimpleBaseline); `unbiased=True` gives DARK encoding and decoding.

    Args:
        input_size: (W, H) of the network input.
        heatmap_size: (W, H) of the heatmaps.
        sigma: Gaussian sigma in heatmap pixels.
        unbiased: exact sub-pixel Gaussians and Newton decoding (DARK) instead of rounding and quarter shift.
        blur_kernel_size: odd kernel of the Gaussian blur before Newton decoding (0: none).
    """

    def __init__(self, input_size: Sequence[int] = (192, 256), heatmap_size: Sequence[int] = (48, 64),
                 sigma: float = 2.0, unbiased: bool = False, blur_kernel_size: int = 11) -> None:
        super().__init__(input_size, heatmap_size, sigma, blur_kernel_size)
        self.unbiased = unbiased
        self.stride = np.array(self.input_size, np.float32) / np.array(self.heatmap_size, np.float32)

    def input_to_heatmap(self, keypoints: np.ndarray) -> np.ndarray:
        return keypoints / self.stride

    def heatmap_to_input(self, keypoints: np.ndarray) -> np.ndarray:
        return keypoints * self.stride

    def encode(self, keypoints: np.ndarray, visible: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
        """keypoints [K, 2] in input pixels -> heatmaps [K, H, W], weights [K]."""
        visible = np.ones(len(keypoints), np.float32) if visible is None else visible
        return gaussian_heatmaps(self.input_to_heatmap(np.asarray(keypoints, np.float32)), visible,
                                 self.heatmap_size, self.sigma, self.unbiased)

    def decode(self, heatmaps: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """heatmaps [K, H, W] -> keypoints [K, 2] in input pixels, scores [K]."""
        heatmaps = np.asarray(heatmaps, np.float32)
        locations, scores = heatmap_maximum(heatmaps)
        if self.unbiased:
            locations = refine_newton(locations, heatmaps, self.blur_kernel_size)
        else:
            locations = refine_quarter(locations, heatmaps)
        return self.heatmap_to_input(locations), scores


@TASK_UTILS.register_module()
class UDPHeatmap(_HeatmapCodec):
    """Unbiased data processing heatmaps: corners aligned, exact Gaussians, Newton decoding (ViTPose).

    Args:
        input_size: (W, H) of the network input.
        heatmap_size: (W, H) of the heatmaps.
        sigma: Gaussian sigma in heatmap pixels.
        blur_kernel_size: odd kernel of the Gaussian blur before Newton decoding (0: none).
    """

    use_udp = True

    def __init__(self, input_size: Sequence[int] = (192, 256), heatmap_size: Sequence[int] = (48, 64),
                 sigma: float = 2.0, blur_kernel_size: int = 11) -> None:
        super().__init__(input_size, heatmap_size, sigma, blur_kernel_size)
        # heatmap = input * (heatmap - 1) / (input - 1): the first and last pixel centres coincide
        self.ratio = (np.array(self.heatmap_size, np.float32) - 1) / (np.array(self.input_size, np.float32) - 1)

    def input_to_heatmap(self, keypoints: np.ndarray) -> np.ndarray:
        return keypoints * self.ratio

    def heatmap_to_input(self, keypoints: np.ndarray) -> np.ndarray:
        return keypoints / self.ratio

    def encode(self, keypoints: np.ndarray, visible: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
        """keypoints [K, 2] in input pixels -> heatmaps [K, H, W], weights [K]."""
        visible = np.ones(len(keypoints), np.float32) if visible is None else visible
        return gaussian_heatmaps(self.input_to_heatmap(np.asarray(keypoints, np.float32)), visible,
                                 self.heatmap_size, self.sigma, unbiased=True)

    def decode(self, heatmaps: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """heatmaps [K, H, W] -> keypoints [K, 2] in input pixels, scores [K]."""
        heatmaps = np.asarray(heatmaps, np.float32)
        locations, scores = heatmap_maximum(heatmaps)
        locations = refine_newton(locations, heatmaps, self.blur_kernel_size)
        return self.heatmap_to_input(locations), scores


__all__ = ['MSRAHeatmap', 'UDPHeatmap', 'gaussian_heatmaps', 'heatmap_maximum', 'refine_newton', 'refine_quarter']
