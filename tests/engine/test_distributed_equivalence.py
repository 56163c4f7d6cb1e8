"""Two gloo processes on half batches take the same step as one process on the whole batch.

Pretraining (MAE) and a downstream task (classification fine-tuning, drop path off so that the step is
deterministic) through our CPU DDP wrapper, with gradients averaged by gloo.
"""

import pytest
import torch
import torch.multiprocessing as mp

from helpers.ddp_step import ddp_step
from mae_transfer.models import ViTClassifier, mae_vit_tiny_patch16

BATCH = 4

def build_tiny_mae() -> torch.nn.Module:
    torch.manual_seed(0)
    return mae_vit_tiny_patch16(img_size=32)

def mae_loss(model, part: dict) -> torch.Tensor:
    # The mask noise is part of the batch: each rank masks its own images exactly as the single process does.
    return model(part['images'], mask_ratio=0.75, noise=part['noise'])[0]

def build_tiny_classifier() -> torch.nn.Module:
    torch.manual_seed(0)
    return ViTClassifier(backbone=dict(arch='tiny', img_size=32, drop_path_rate=0.0), num_classes=5,
                         label_smoothing=0.1)


def classification_loss(model, part: dict) -> torch.Tensor:
    return model(part['images'], part['labels'], mode='loss')['loss']


def run(world_size: int, tmp_path, build, batch: dict, loss_fn) -> dict:
    out_file = tmp_path / f'world{world_size}.pt'
    mp.spawn(ddp_step, nprocs=world_size, join=True,
             args=(world_size, str(tmp_path / f'init{world_size}'), build, batch, loss_fn, str(out_file)))
    return torch.load(out_file)

def assert_same_step(single: dict, double: dict) -> None:
    assert single['grads'].keys() == double['grads'].keys()
    for name, grad in single['grads'].items():
        torch.testing.assert_close(double['grads'][name], grad, rtol=1e-4, atol=1e-7, msg=name)
    for name, value in single['state'].items():
        torch.testing.assert_close(double['state'][name], value, rtol=1e-4, atol=1e-6, msg=name)

@pytest.mark.timeout(300)
def test_mae_pretraining_step_two_processes_equal_one(tmp_path):
    generator = torch.Generator().manual_seed(1)
    batch = dict(images=torch.randn(BATCH, 3, 32, 32, generator=generator),
                 noise=torch.rand(BATCH, 4, generator=generator))
    single = run(1, tmp_path, build_tiny_mae, batch, mae_loss)
    double = run(2, tmp_path, build_tiny_mae, batch, mae_loss)
    assert_same_step(single, double)
    moved = max((single['state'][n] - build_tiny_mae().state_dict()[n]).abs().max() for n in single['state'])
    assert moved > 1e-4, 'the step must change the weights for the comparison to mean anything'



@pytest.mark.timeout(300)
def test_classification_fine_tuning_step_two_processes_equal_one(tmp_path):
    generator = torch.Generator().manual_seed(2)
    batch = dict(images=torch.randn(BATCH, 3, 32, 32, generator=generator),
                 labels=torch.randint(0, 5, (BATCH, ), generator=generator))
    single = run(1, tmp_path, build_tiny_classifier, batch, classification_loss)
    double = run(2, tmp_path, build_tiny_classifier, batch, classification_loss)
    assert_same_step(single, double)
    assert 'head.weight' in single['grads'] and 'backbone.blocks.0.attn.qkv.weight' in single['grads']
