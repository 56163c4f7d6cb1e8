"""PoseHalfBody follows mmpose's HalfBodyTransform: at least 9 labelled keypoints, upper body with probability 0.7."""
import numpy as np

from mae_transfer.datasets.pose_transforms import PoseHalfBody


def person(num_upper: int) -> dict:
    """Labelled: the first `num_upper` upper-body keypoints (COCO 0-10, y < 60) and 3 lower-body ones (y >= 100)."""
    keypoints = np.stack([np.arange(17) * 3.0, np.where(np.arange(17) < 11, np.arange(17) * 5.0, 100.0 + np.arange(17))],
                         axis=1).astype(np.float32)  # [17, 2]
    visible = np.zeros(17, np.float32)
    visible[:num_upper] = 1
    visible[[11, 12, 13]] = 1
    return dict(keypoints=keypoints, keypoints_visible=visible, bbox_center=np.zeros(2, np.float32),
                bbox_scale=np.ones(2, np.float32))


def test_half_body_needs_nine_keypoints_and_prefers_the_upper_body():
    transform = PoseHalfBody(prob=1.0)
    assert (transform.min_total_keypoints, transform.upper_prioritized_prob) == (9, 0.7)
    assert np.array_equal(transform(person(5))['bbox_scale'], np.ones(2))  # 8 labelled keypoints: left alone
    upper, trials = 0, 400
    np.random.seed(0)
    for _ in range(trials):
        result = transform(person(6))  # 9 labelled keypoints, both halves qualify
        assert not np.array_equal(result['bbox_scale'], np.ones(2))
        upper += result['bbox_center'][1] < 60
    assert 0.63 < upper / trials < 0.77
