"""Stretching a schedule moves warmup, cosine, steps and intervals with the run length (utils/schedule.py)."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.optim.scheduler import CosineAnnealingLR, LinearLR

from mae_transfer.utils.configs import CONFIG_ROOT
from mae_transfer.utils.schedule import scale_schedule, set_schedule_length

PRETRAIN = CONFIG_ROOT / 'pretrain' / 'mae_vit-tiny-p16_1xb32-coslr-50e_synthetic-128x128.py'
DET = CONFIG_ROOT / 'det' / 'mask-rcnn_vit-tiny-p16_1xb4-lsj-600i_synthetic-128x128.py'


def _bounds(cfg):
    return [(s.type, s.begin, s.end, s.get('T_max')) for s in cfg.param_scheduler]


def lr_per_epoch(cfg, lr=1.0):
    """The lr each epoch trains with, from mmengine's schedulers stepped per epoch (as the Runner would)."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    schedulers = []
    for scheduler in cfg.param_scheduler:
        options = {k: v for k, v in scheduler.items() if k not in ('type', 'convert_to_iter_based')}
        schedulers.append({'LinearLR': LinearLR, 'CosineAnnealingLR': CosineAnnealingLR}[scheduler.type](
            optimizer, **options))
    lrs = []
    for _ in range(cfg.train_cfg.max_epochs):
        lrs.append(optimizer.param_groups[0]['lr'])
        optimizer.step()  # no gradients: nothing moves; keeps the optimizer-then-scheduler order
        for scheduler in schedulers:
            scheduler.step()
    return lrs


def test_longer_pretraining_stretches_warmup_and_cosine_instead_of_training_at_lr_zero():
    cfg = Config.fromfile(str(PRETRAIN))
    assert _bounds(cfg) == [('LinearLR', 0, 5, None), ('CosineAnnealingLR', 5, 50, 45)]
    naive = copy.deepcopy(cfg)
    naive.train_cfg.max_epochs = 200  # what train_cfg.max_epochs=200 alone does
    assert max(lr_per_epoch(naive)[50:]) < 2e-3  # the cosine ended at epoch 50: 150 epochs at lr ~0
    set_schedule_length(cfg, epochs=200)
    assert cfg.train_cfg.max_epochs == 200
    assert _bounds(cfg) == [('LinearLR', 0, 20, None), ('CosineAnnealingLR', 20, 200, 180)]
    lrs = lr_per_epoch(cfg)
    assert lrs[0] == pytest.approx(1e-3) and lrs[10] < 0.6 and lrs[20] == pytest.approx(1.0)  # 20 warmup epochs
    assert lrs[110] == pytest.approx(0.5, abs=0.01) and 0 < lrs[-1] < 1e-3  # cosine over the whole run


def test_two_epochs_keep_one_warmup_epoch_then_cosine():
    cfg = Config.fromfile(str(PRETRAIN))
    set_schedule_length(cfg, epochs=2)
    assert _bounds(cfg) == [('LinearLR', 0, 1, None), ('CosineAnnealingLR', 1, 2, 1)]


def test_iteration_schedule_moves_steps_and_intervals():
    cfg = Config.fromfile(str(DET))
    length = cfg.train_cfg.max_iters
    warmup, steps = copy.deepcopy(cfg.param_scheduler)
    scale_schedule(cfg, 0.5)
    assert cfg.train_cfg.max_iters == round(length / 2)
    assert cfg.param_scheduler[0].end == round(warmup.end / 2)
    assert cfg.param_scheduler[1].milestones == [round(m / 2) for m in steps.milestones]
    assert cfg.default_hooks.checkpoint.interval <= cfg.train_cfg.max_iters
    assert cfg.train_cfg.val_interval <= cfg.train_cfg.max_iters
    scale_schedule(cfg, 0.001)  # shrunk to nothing: every boundary stays >= 1 and ordered
    assert cfg.train_cfg.max_iters == 1 and cfg.param_scheduler[0].end >= cfg.param_scheduler[0].begin + 1


def test_the_wrong_unit_or_a_bad_length_is_refused():
    with pytest.raises(ValueError, match='max_iters, not max_epochs: give --iters'):
        set_schedule_length(Config.fromfile(str(DET)), epochs=10)
    with pytest.raises(ValueError, match='at least 1'):
        set_schedule_length(Config.fromfile(str(PRETRAIN)), epochs=0)
    with pytest.raises(ValueError, match='positive'):
        scale_schedule(Config.fromfile(str(PRETRAIN)), -1)
