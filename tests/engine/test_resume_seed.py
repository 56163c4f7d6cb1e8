"""A resumed run of a config without a seed (mmdet's / mmseg's runtimes) takes the checkpoint's seed before the
Runner builds its sampler."""
import torch
from mmengine.config import Config

from mae_transfer.engine.resume_seed import checkpoint_seed, keep_the_resumed_seed


def _checkpoint(path, seed, legacy=False):
    torch.save({'meta': {'seed': seed, 'epoch': 1}, 'state_dict': {'w': torch.ones(3)}}, path,
               _use_new_zipfile_serialization=not legacy)
    return str(path)


def test_the_seed_comes_from_the_checkpoint_resumed(tmp_path):
    assert checkpoint_seed(_checkpoint(tmp_path / 'legacy.pth', 7, legacy=True)) == 7  # not memory-mappable
    (tmp_path / 'work').mkdir()
    latest = _checkpoint(tmp_path / 'work' / 'epoch_2.pth', 1234)
    (tmp_path / 'work' / 'last_checkpoint').write_text(latest)

    cfg = Config(dict(work_dir=str(tmp_path / 'work'), resume=True, load_from=None))
    assert keep_the_resumed_seed(cfg) == 1234 and cfg.randomness.seed == 1234  # --resume: the work dir's last

    cfg = Config(dict(work_dir=str(tmp_path), resume=True, load_from=str(tmp_path / 'legacy.pth'),
                      randomness=dict(deterministic=False)))
    assert keep_the_resumed_seed(cfg) == 7 and cfg.randomness == dict(deterministic=False, seed=7)

    seeded = Config(dict(work_dir=str(tmp_path / 'work'), resume=True, randomness=dict(seed=0)))
    assert keep_the_resumed_seed(seeded) is None and seeded.randomness.seed == 0  # the config's own seed stands
    fresh = Config(dict(work_dir=str(tmp_path / 'work'), resume=False))
    assert keep_the_resumed_seed(fresh) is None and 'randomness' not in fresh
    empty = Config(dict(work_dir=str(tmp_path / 'nothing'), resume=True))
    assert keep_the_resumed_seed(empty) is None  # nothing to resume from: mmengine starts over
