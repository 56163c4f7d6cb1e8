"""`ensure_synthetic`: a task's synthetic set is written once and the config points at it."""
import pytest
from mmengine.config import Config

from mae_transfer.datasets.synthetic import SYNTHETIC_SETS, ensure_synthetic, synthetic_data_options
from mae_transfer.utils.configs import CONFIG_ROOT

DET = CONFIG_ROOT / 'det' / 'mask-rcnn_vit-tiny-p16_1xb4-lsj-600i_synthetic-128x128.py'
CLS = CONFIG_ROOT / 'cls' / 'ft_vit-tiny-p16_1xb32-600i_synthetic-64x64.py'


def test_det_set_is_written_once_and_the_config_points_at_it(tmp_path):
    logged, cfg = [], Config.fromfile(str(DET))
    root = ensure_synthetic('det', tmp_path / 'det', cfg=cfg, log=logged.append, num_train=2, num_val=1,
                            size_range=(64, 72))
    assert root == tmp_path / 'det' and len(logged) == 1 and 'synthetic det set' in logged[0]
    assert (root / 'annotations' / 'instances_val.json').is_file()
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.data_root == f'{root.as_posix()}/'
    assert cfg.test_evaluator.ann_file == f'{root.as_posix()}/annotations/instances_val.json'
    ensure_synthetic('det', root, log=logged.append)
    assert len(logged) == 1  # already there: nothing written


def test_cls_points_the_splits_and_the_class_list(tmp_path):
    cfg = Config.fromfile(str(CLS))
    cfg.val_dataloader = None  # a loader the caller dropped stays dropped
    root = ensure_synthetic('cls', tmp_path, cfg=cfg, log=None, num_classes=2, train_per_class=1, val_per_class=1,
                            image_size=(24, 32))
    assert cfg.train_dataloader.dataset.data_root == f'{root.as_posix()}/train'
    assert cfg.test_dataloader.dataset.classes == f'{root.as_posix()}/train'
    assert cfg.val_dataloader is None and sorted(p.name for p in (root / 'val').iterdir()) == ['ellipse', 'rectangle']


def test_pretrain_images_are_rewritten_when_the_count_differs(tmp_path):
    logged = []
    ensure_synthetic('pretrain', tmp_path, log=logged.append, num_images=2, size_range=(32, 40))
    ensure_synthetic('pretrain', tmp_path, log=logged.append, num_images=2, size_range=(32, 40))
    ensure_synthetic('pretrain', tmp_path, log=logged.append, num_images=3, size_range=(32, 40))
    assert len(logged) == 2 and len(list(tmp_path.glob('scene_*.png'))) == 3
    assert synthetic_data_options('pretrain', tmp_path) == {'train_dataloader.dataset.data_root': tmp_path.as_posix()}


def test_every_task_has_a_set_and_unknown_tasks_are_named():
    assert sorted(SYNTHETIC_SETS) == ['cls', 'det', 'pool', 'pose', 'pretrain', 'seg']
    with pytest.raises(ValueError, match="no synthetic set for task 'depth'"):
        ensure_synthetic('depth')
