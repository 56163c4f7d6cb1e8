"""`mae_transfer.apis`: the same `init_model` / `inference` for every task (the task read from the config), and
every task module with the same three functions. Det, seg and pose run through them in their own tests
(test_det_train, test_seg_infer, test_pose_train); classification and pretraining here."""
import importlib

import cv2
import numpy as np
import pytest
import torch

from mae_transfer.apis import TASK_MODULES, inference, init_model
from mae_transfer.datasets import generate_images
from mae_transfer.utils.configs import CONFIG_ROOT

CLS_TINY = CONFIG_ROOT / 'cls' / 'ft_vit-tiny-p16_1xb32-600i_synthetic-64x64.py'
PRETRAIN_TINY = CONFIG_ROOT / 'pretrain' / 'mae_vit-tiny-p16_1xb32-coslr-50e_synthetic-128x128.py'


@pytest.mark.parametrize('task', sorted(TASK_MODULES))
def test_every_task_module_has_the_same_verbs(task):
    module = importlib.import_module(TASK_MODULES[task])
    for name in ('init_model', 'inference', 'infer_images'):
        assert callable(getattr(module, name)), (task, name)
    if task != 'pretrain':  # what apis.annotate needs for images, folders and videos
        assert callable(module.render) and callable(module.to_json) and module.PICTURE_SUFFIX in ('.png', '.jpg')


def test_classifier_from_a_config_predicts_files_and_arrays(tmp_path):
    paths = generate_images(tmp_path, num_images=2, seed=1)
    torch.manual_seed(0)
    model = init_model(CLS_TINY)  # random weights: plumbing, not quality
    assert not model.training and len(model.dataset_meta['classes']) == model.num_classes
    from_files = inference(model, paths, topk=3)
    assert len(from_files) == 2 and all(len(top) == 3 for top in from_files)
    names = [name for name, _ in from_files[0]]
    assert set(names) <= set(model.dataset_meta['classes'])
    scores = [score for _, score in from_files[0]]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-6
    from_array = inference(model, cv2.imread(str(paths[0])), topk=3)  # one BGR array: a list of one
    assert [name for name, _ in from_array[0]] == names
    np.testing.assert_allclose([score for _, score in from_array[0]], scores, atol=1e-4)


def test_pretraining_model_loads_our_checkpoint_and_reconstructs(tmp_path):
    paths = generate_images(tmp_path / 'images', num_images=2, seed=2)
    torch.manual_seed(0)
    source = init_model(PRETRAIN_TINY)
    checkpoint = tmp_path / 'ours.pth'
    torch.save({'state_dict': {f'mae.{k}': v for k, v in source.mae.state_dict().items()}, 'meta': {}}, checkpoint)
    torch.manual_seed(1)
    model = init_model(PRETRAIN_TINY, str(checkpoint))
    for key, value in source.mae.state_dict().items():
        assert torch.equal(model.mae.state_dict()[key], value), key
    first, again = inference(model, paths, seed=3), inference(model, paths, seed=3)
    assert first['reconstruction'].shape == (2, 3, 128, 128) and first['mask'].shape == (2, 64)
    assert torch.equal(first['mask'], again['mask'])  # the seed fixes the mask
    assert first['mask'].sum(dim=1).tolist() == [48.0, 48.0]  # the model's training ratio, 0.75
    assert 0.0 <= float(first['original'].min()) and float(first['original'].max()) <= 1.0
