"""Pose codecs, geometry and transforms: encode/decode round trips, flips, affine warps."""
import numpy as np
import pytest

from mae_transfer.datasets.pose_transforms import (GenerateHeatmapTarget, GetBBoxCenterScale, PackPoseInputs,
                                                   PoseHalfBody, PoseRandomBBoxTransform, PoseRandomFlip,
                                                   TopdownAffine)
from mae_transfer.codecs import COCO_FLIP_INDICES, MSRAHeatmap, UDPHeatmap, crop_to_image, flip_keypoints
from mae_transfer.codecs import apply_affine, warp_matrix

INPUT, HEATMAP, SIGMA = (192, 256), (48, 64), 2.0


def interior_keypoints(codec, rng, num=17):
    """Keypoints whose Gaussian lies 3 sigma inside the heatmap, expressed in input pixels."""
    margin = 3 * SIGMA + 1
    in_map = rng.uniform([margin, margin], [HEATMAP[0] - 1 - margin, HEATMAP[1] - 1 - margin], size=(num, 2))
    return codec.heatmap_to_input(in_map.astype(np.float32))


@pytest.mark.parametrize('codec', [UDPHeatmap(INPUT, HEATMAP, SIGMA),
                                   MSRAHeatmap(INPUT, HEATMAP, SIGMA, unbiased=True)], ids=['udp', 'msra-dark'])
def test_encode_decode_recovers_subpixel_keypoints(codec):
    rng = np.random.default_rng(0)
    keypoints = interior_keypoints(codec, rng)
    heatmaps, weights = codec.encode(keypoints, np.ones(17))
    assert heatmaps.shape == (17, HEATMAP[1], HEATMAP[0]) and np.all(weights == 1)
    decoded, scores = codec.decode(heatmaps)
    error = np.abs(codec.input_to_heatmap(decoded) - codec.input_to_heatmap(keypoints)).max()
    assert error < 0.05, f'{codec}: {error:.4f} heatmap pixels'
    assert np.all(scores > 0.5)


def test_unblurred_newton_decoding_is_exact():
    codec = UDPHeatmap(INPUT, HEATMAP, SIGMA, blur_kernel_size=0)
    keypoints = interior_keypoints(codec, np.random.default_rng(1))
    decoded, _ = codec.decode(codec.encode(keypoints)[0])
    assert np.abs(codec.input_to_heatmap(decoded) - codec.input_to_heatmap(keypoints)).max() < 1e-3


def test_classic_biased_codec_is_within_half_a_pixel():
    codec = MSRAHeatmap(INPUT, HEATMAP, SIGMA, unbiased=False)
    keypoints = interior_keypoints(codec, np.random.default_rng(2))
    heatmaps, _ = codec.encode(keypoints)
    peak = heatmaps.reshape(17, -1).argmax(1)
    rounded = np.floor(codec.input_to_heatmap(keypoints) + 0.5)
    assert np.array_equal(np.stack([peak % HEATMAP[0], peak // HEATMAP[0]], 1), rounded)  # biased: integer peak
    decoded, _ = codec.decode(heatmaps)
    assert np.abs(codec.input_to_heatmap(decoded) - codec.input_to_heatmap(keypoints)).max() <= 0.75 + 1e-5


def test_target_weights_follow_visibility_and_bounds():
    codec = UDPHeatmap(INPUT, HEATMAP, SIGMA)
    keypoints = np.array([[96, 128], [50, 60], [-100, 50], [96, 400]], np.float32)
    heatmaps, weights = codec.encode(keypoints, np.array([1, 0, 1, 1]))
    assert weights.tolist() == [1, 0, 0, 0]
    assert heatmaps[0].max() > 0.9 and np.all(heatmaps[1:] == 0)  # peak 1 at the sub-pixel centre


def test_flipped_udp_heatmaps_mirror_exactly():
    """UDP: the heatmap of the mirrored crop is the mirrored heatmap with left/right channels swapped."""
    codec = UDPHeatmap(INPUT, HEATMAP, SIGMA)
    keypoints = interior_keypoints(codec, np.random.default_rng(3))
    flipped, _ = flip_keypoints(keypoints, np.ones(17), INPUT[0], COCO_FLIP_INDICES)
    direct = codec.encode(flipped)[0]
    mirrored = codec.encode(keypoints)[0][list(COCO_FLIP_INDICES)][..., ::-1]
    np.testing.assert_allclose(direct, mirrored, atol=1e-5)


def test_flip_twice_is_identity():
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (40, 57, 3), dtype=np.uint8)
    keypoints = rng.uniform(0, 40, (17, 2)).astype(np.float32)
    visible = rng.integers(0, 2, 17).astype(np.float32)
    results = dict(img=image.copy(), keypoints=keypoints.copy(), keypoints_visible=visible.copy(),
                   bbox=np.array([3, 4, 30, 35], np.float32), flip_indices=COCO_FLIP_INDICES)
    flip = PoseRandomFlip(prob=1.0)
    once = flip(dict(results))
    assert not np.array_equal(once['img'], image) and once['flip']
    # a flipped keypoint still sits on the same pixel content (left nose pixel -> mirrored pixel)
    x, y = int(keypoints[0, 0]), int(keypoints[0, 1])
    assert np.array_equal(once['img'][y, 56 - x], image[y, x])
    np.testing.assert_allclose(once['keypoints_visible'], visible[list(COCO_FLIP_INDICES)])
    twice = flip(once)
    assert np.array_equal(twice['img'], image) and not twice['flip']
    np.testing.assert_allclose(twice['keypoints'], keypoints, atol=1e-5)
    np.testing.assert_allclose(twice['keypoints_visible'], visible)
    np.testing.assert_allclose(twice['bbox'], results['bbox'])


@pytest.mark.parametrize('use_udp', [True, False])
def test_affine_warp_moves_pixels_with_keypoints(use_udp):
    """A bright dot in the image lands on the warped keypoint, with rotation; the inverse maps back."""
    image = np.zeros((300, 400, 3), np.uint8)
    image[148:153, 218:223] = 255  # dot centred on (220, 150)
    results = dict(img=image, bbox=np.array([150, 60, 290, 260], np.float32),
                   keypoints=np.array([[220, 150]] * 17, np.float32), keypoints_visible=np.ones(17, np.float32))
    results = GetBBoxCenterScale(padding=1.25)(results)
    results['bbox_rotation'] = 30.0
    results = TopdownAffine(INPUT, use_udp=use_udp)(results)
    crop = results['img'][..., 0].astype(np.float32)
    ys, xs = np.nonzero(crop > 0)
    weights = crop[ys, xs]
    centroid = np.array([(xs * weights).sum(), (ys * weights).sum()]) / weights.sum()
    np.testing.assert_allclose(centroid, results['input_keypoints'][0], atol=0.3)
    w, h = results['input_scale']
    assert w / h == pytest.approx(INPUT[0] / INPUT[1])
    matrix = warp_matrix(results['input_center'], results['input_scale'], 0.0, INPUT, use_udp)
    back = crop_to_image(apply_affine(results['keypoints'], matrix), results['input_center'],
                         results['input_scale'], INPUT, use_udp)
    np.testing.assert_allclose(back, results['keypoints'], atol=1e-3)


def test_training_pipeline_produces_targets():
    rng = np.random.default_rng(5)
    keypoints = np.column_stack([rng.uniform(100, 200, 17), rng.uniform(50, 250, 17)]).astype(np.float32)
    results = dict(img=rng.integers(0, 255, (300, 300, 3), dtype=np.uint8),
                   bbox=np.array([90, 40, 210, 260], np.float32),
                   keypoints=keypoints, keypoints_visible=np.ones(17, np.float32), id=1, img_id=2, bbox_score=1.0,
                   flip_indices=COCO_FLIP_INDICES)
    codec = dict(type='UDPHeatmap', input_size=INPUT, heatmap_size=HEATMAP, sigma=SIGMA)
    np.random.seed(0)
    for transform in [GetBBoxCenterScale(), PoseRandomFlip(0.5), PoseHalfBody(prob=1.0), PoseRandomBBoxTransform(),
                      TopdownAffine(INPUT, use_udp=True), GenerateHeatmapTarget(codec), PackPoseInputs()]:
        results = transform(results)
    assert tuple(results['inputs'].shape) == (3, INPUT[1], INPUT[0])
    sample = results['data_samples']
    assert tuple(sample.heatmaps.shape) == (17, HEATMAP[1], HEATMAP[0])
    assert sample.keypoint_weights.shape == (17, ) and sample.img_id == 2
    assert float(sample.heatmaps.max()) > 0.5
