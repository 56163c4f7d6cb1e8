"""Heatmap decoding of a whole batch at once, with exactly the numbers of the codec's per-crop `decode`.

`MSRAHeatmap.decode` / `UDPHeatmap.decode` (mae_transfer/codecs/heatmap.py) take one crop's heatmaps [K, H, W]
and refine each keypoint in a Python loop (a Newton step with a 2x2 `np.linalg.solve` per keypoint): at
inference that loop, run N x K times per batch, costs more than the network on a GPU. Here the arg-max, the
log-heatmaps and the Newton step run as array operations over every map of the batch [N * K, H, W]. Each
element goes through the same float32 / float64 operations as in the loop (NumPy >= 2 promotes a Python scalar
like an array), and the batched `np.linalg.det` / `solve` factor each 2x2 matrix with the same LAPACK routine,
so the keypoints are bit-identical (tests/models/test_pose_batch_decode.py checks it).
"""
from typing import Tuple

import numpy as np

from ...codecs.heatmap import MSRAHeatmap, UDPHeatmap, blur_heatmaps, heatmap_maximum, refine_quarter


def refine_newton_batch(locations: np.ndarray, heatmaps: np.ndarray, blur_kernel: int) -> np.ndarray:
    """`refine_newton` of codecs/heatmap.py over many maps at once.

    Args:
        locations: integer arg-max (x, y) per map [M, 2] (float32; -1 where the map has no positive value).
        heatmaps: [M, H, W] float32.
        blur_kernel: odd Gaussian kernel applied first (0: none).

    Returns:
        refined locations [M, 2] (float32).
    """
    maps = blur_heatmaps(heatmaps, blur_kernel) if blur_kernel > 0 else heatmaps  # per map, cv2 (cheap)
    logs = np.log(np.clip(maps, 1e-10, None))  # [M, H, W]
    height, width = logs.shape[1:]
    refined = locations.copy()
    xy = locations.astype(np.int64)
    inner = np.flatnonzero((xy[:, 0] >= 1) & (xy[:, 0] < width - 1) & (xy[:, 1] >= 1) & (xy[:, 1] < height - 1))
    if inner.size == 0:
        return refined
    x, y = xy[inner, 0], xy[inner, 1]

    def at(dy: int, dx: int) -> np.ndarray:
        return logs[inner, y + dy, x + dx]  # [M'] float32

    dx = 0.5 * (at(0, 1) - at(0, -1))
    dy = 0.5 * (at(1, 0) - at(-1, 0))
    dxx = at(0, 1) - 2 * at(0, 0) + at(0, -1)
    dyy = at(1, 0) - 2 * at(0, 0) + at(-1, 0)
    dxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
    hessian = np.stack([np.stack([dxx, dxy], -1), np.stack([dxy, dyy], -1)], -2).astype(np.float64)  # [M', 2, 2]
    solvable = np.abs(np.linalg.det(hessian)) >= 1e-12  # the loop's `continue` for (near-)singular ones
    gradient = np.stack([dx, dy], -1)[solvable]  # [M'', 2] float32, as np.array([dx, dy])
    offset = -np.linalg.solve(hessian[solvable], gradient[..., None].astype(np.float64))[..., 0]  # [M'', 2]
    refined[inner[solvable]] += np.clip(offset, -1.0, 1.0)
    return refined


def decode_batch(codec, heatmaps: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """`codec.decode` of every crop of a batch: heatmaps [N, K, H, W] -> keypoints [N, K, 2] in input pixels and
    scores [N, K]. Works for the MSRAHeatmap (classic or unbiased) and UDPHeatmap codecs; any other codec is
    decoded crop by crop with its own `decode`."""
    heatmaps = np.asarray(heatmaps, np.float32)
    num, keypoints_per_crop = heatmaps.shape[:2]
    if type(codec).decode not in (MSRAHeatmap.decode, UDPHeatmap.decode):  # a codec with its own decoding
        decoded = [codec.decode(maps) for maps in heatmaps]
        return np.stack([k for k, _ in decoded]), np.stack([s for _, s in decoded])
    maps = heatmaps.reshape(num * keypoints_per_crop, *heatmaps.shape[2:])  # [N * K, H, W]
    locations, scores = heatmap_maximum(maps)
    if codec.use_udp or codec.unbiased:
        locations = refine_newton_batch(locations, maps, codec.blur_kernel_size)
    else:
        locations = refine_quarter(locations, maps)  # one Python step per map, but only sign comparisons
    keypoints = codec.heatmap_to_input(locations)
    return keypoints.reshape(num, keypoints_per_crop, 2), scores.reshape(num, keypoints_per_crop)


__all__ = ['decode_batch', 'refine_newton_batch']
