"""The batched heatmap decoding gives bit-identical keypoints and scores to the codecs' per-crop `decode`."""
import numpy as np
import pytest

from mae_transfer.codecs.heatmap import MSRAHeatmap, UDPHeatmap
from mae_transfer.models.pose.batch_decode import decode_batch


def network_like_heatmaps(num: int = 6, keypoints: int = 17, seed: int = 0) -> np.ndarray:
    """Encoded Gaussians plus noise (as a network's output), a few all-negative maps and peaks on the border."""
    rng = np.random.default_rng(seed)
    codec = UDPHeatmap(input_size=(48, 64), heatmap_size=(12, 16))
    maps = np.stack([codec.encode(rng.uniform([-4, -4], [52, 68], (keypoints, 2)).astype(np.float32))[0]
                     for _ in range(num)])  # [N, K, 16, 12]; some centres off the crop
    maps += rng.normal(0, 0.05, maps.shape).astype(np.float32)
    maps[0, :3] = -np.abs(maps[0, :3])  # no positive value: the location is -1
    maps[1, 0] = 0
    maps[1, 0, 0, 5] = 1.0  # a peak on the top row
    return maps


@pytest.mark.parametrize('codec', [UDPHeatmap(input_size=(48, 64), heatmap_size=(12, 16)),
                                   MSRAHeatmap(input_size=(48, 64), heatmap_size=(12, 16)),
                                   MSRAHeatmap(input_size=(48, 64), heatmap_size=(12, 16), unbiased=True),
                                   UDPHeatmap(input_size=(48, 64), heatmap_size=(12, 16), blur_kernel_size=0)],
                         ids=['udp', 'classic', 'dark', 'udp-no-blur'])
def test_batch_decoding_equals_the_codec_crop_by_crop(codec):
    maps = network_like_heatmaps()
    keypoints, scores = decode_batch(codec, maps)
    expected = [codec.decode(crop) for crop in maps]
    assert np.array_equal(keypoints, np.stack([k for k, _ in expected]))  # exactly, not approximately
    assert np.array_equal(scores, np.stack([s for _, s in expected]))
    assert keypoints.dtype == np.float32 and keypoints.shape == (6, 17, 2)
