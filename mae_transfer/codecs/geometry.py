"""Top-down pose geometry shared by the data pipeline and the estimator (plain numpy, no framework).

A person crop is described by its centre (x, y), its scale (w, h) in image pixels (the box after padding and
aspect-ratio fixing) and a rotation in degrees. `warp_matrix` maps image pixels to input-crop pixels; the
estimator inverts it to bring decoded keypoints back to the image. Two pixel conventions:

- classic (SimpleBaseline): the box centre goes to input (W / 2, H / 2) and the box width to W pixels;
- UDP (Huang et al. 2020): the box centre goes to ((W - 1) / 2, (H - 1) / 2) and the box width to W - 1
  pixel steps, so the crop is symmetric in pixel-centre coordinates and flipping is exact.
"""
from typing import Sequence, Tuple

import numpy as np


def box_to_center_scale(bbox_xyxy: np.ndarray, padding: float = 1.25) -> Tuple[np.ndarray, np.ndarray]:
    """Box [4] (x1, y1, x2, y2) -> centre [2] and padded scale [2] (w, h)."""
    x1, y1, x2, y2 = np.asarray(bbox_xyxy, np.float32)
    center = np.array([(x1 + x2) * 0.5, (y1 + y2) * 0.5], np.float32)
    scale = np.array([x2 - x1, y2 - y1], np.float32) * padding
    return center, scale


def fix_aspect_ratio(scale: np.ndarray, aspect_ratio: float) -> np.ndarray:
    """Grow the shorter side of `scale` [2] (w, h) so that w / h == aspect_ratio."""
    w, h = np.asarray(scale, np.float32)
    if w > h * aspect_ratio:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    return np.array([w, h], np.float32)


def warp_matrix(center: np.ndarray, scale: np.ndarray, rotation: float, output_size: Sequence[int],
                use_udp: bool = False) -> np.ndarray:
    """The [2, 3] affine map image pixels -> crop pixels: p' = S R (p - center) + dst_center.

    Args:
        center: crop centre (x, y) in the image.
        scale: crop size (w, h) in image pixels.
        rotation: degrees; the crop is rotated by this angle (positive: counter-clockwise content).
        output_size: (W, H) of the crop.
        use_udp: UDP pixel convention (see the module docstring).
    """
    out_w, out_h = float(output_size[0]), float(output_size[1])
    if use_udp:
        sx, sy = (out_w - 1) / scale[0], (out_h - 1) / scale[1]
        dst = np.array([(out_w - 1) * 0.5, (out_h - 1) * 0.5])
    else:
        sx, sy = out_w / scale[0], out_h / scale[1]
        dst = np.array([out_w * 0.5, out_h * 0.5])
    theta = np.deg2rad(rotation)
    cos, sin = np.cos(theta), np.sin(theta)
    linear = np.array([[sx * cos, -sx * sin], [sy * sin, sy * cos]])  # S @ R: [2, 2]
    offset = dst - linear @ np.asarray(center, np.float64)
    return np.concatenate([linear, offset[:, None]], axis=1).astype(np.float32)  # [2, 3]


def apply_affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Points [..., 2] mapped by an affine [2, 3]."""
    points = np.asarray(points, np.float32)
    return points @ matrix[:, :2].T + matrix[:, 2]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    linear_inv = np.linalg.inv(matrix[:, :2].astype(np.float64))
    return np.concatenate([linear_inv, -(linear_inv @ matrix[:, 2:].astype(np.float64))], axis=1).astype(np.float32)


def crop_to_image(keypoints: np.ndarray, center: np.ndarray, scale: np.ndarray, input_size: Sequence[int],
                  use_udp: bool = False) -> np.ndarray:
    """Keypoints [K, 2] in crop pixels (no rotation, as at test time) -> image pixels."""
    return apply_affine(keypoints, invert_affine(warp_matrix(center, scale, 0.0, input_size, use_udp)))


def flip_keypoints(keypoints: np.ndarray, visible: np.ndarray, width: int,
                   flip_indices: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
    """Mirror keypoints [K, 2] in an image of `width` pixels (x -> width - 1 - x) and swap left/right."""
    order = np.asarray(flip_indices, np.int64)
    flipped = np.asarray(keypoints, np.float32)[order].copy()
    flipped[:, 0] = width - 1 - flipped[:, 0]
    return flipped, np.asarray(visible)[order].copy()


__all__ = ['apply_affine', 'box_to_center_scale', 'crop_to_image', 'fix_aspect_ratio', 'flip_keypoints', 'invert_affine', 'warp_matrix']
