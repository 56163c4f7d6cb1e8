"""The unlabeled pretraining pool: every task's kind of scene, pixels only, deterministic and extendable."""
import numpy as np
from PIL import Image

from mae_transfer.datasets.synthetic import ensure_synthetic
from mae_transfer.datasets.synthetic.pool import POOL_KINDS, generate_unlabeled_pool


def test_pool_cycles_through_every_kind_and_writes_no_labels(tmp_path):
    paths = generate_unlabeled_pool(tmp_path, num_images=8, seed=3)
    assert [p.name for p in paths] == [f'scene_{i:05d}.png' for i in range(8)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in paths]  # images only, no annotations
    for index, path in enumerate(paths):
        low, high = list(POOL_KINDS.values())[index % len(POOL_KINDS)][1]
        image = Image.open(path)
        assert image.mode == 'RGB' and low <= image.height <= high and low <= image.width <= high, path


def test_same_seed_same_images_and_a_larger_pool_extends_a_smaller_one(tmp_path):
    small = generate_unlabeled_pool(tmp_path / 'small', num_images=5, seed=1)
    large = generate_unlabeled_pool(tmp_path / 'large', num_images=6, seed=1)
    other = generate_unlabeled_pool(tmp_path / 'other', num_images=5, seed=2)
    for a, b in zip(small, large):
        assert np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
    assert not np.array_equal(np.asarray(Image.open(small[0])), np.asarray(Image.open(other[0])))


def test_ensure_synthetic_writes_the_pool_once(tmp_path):
    logged = []
    ensure_synthetic('pool', tmp_path, log=logged.append, num_images=4)
    ensure_synthetic('pool', tmp_path, log=logged.append, num_images=4)
    assert len(logged) == 1 and len(list(tmp_path.glob('scene_*.png'))) == 4
    ensure_synthetic('pool', tmp_path, log=logged.append, num_images=2)  # smaller: no extras left behind
    assert len(logged) == 2 and sorted(p.name for p in tmp_path.glob('scene_*.png')) == ['scene_00000.png',
                                                                                         'scene_00001.png']
