"""Checkpoints load with weights_only=True: mmengine resume works, arbitrary classes are refused."""
import argparse
import collections
import pickle

import numpy as np
import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner, load_checkpoint
from torch.utils.data import Dataset

from mae_transfer.checkpoint import CorruptCheckpointError, UnsafeCheckpointError, safe_torch_load


class TinyRegressor(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)

    def forward(self, inputs, targets=None, mode='tensor'):
        outputs = self.linear(torch.stack(inputs) if isinstance(inputs, list) else inputs)
        if mode == 'loss':
            return dict(loss=((outputs.squeeze(1) - torch.stack(targets)) ** 2).mean())
        return outputs


class RandomPairs(Dataset):
    def __len__(self):
        return 16

    def __getitem__(self, index):
        generator = torch.Generator().manual_seed(index)
        x = torch.randn(4, generator=generator)
        return dict(inputs=x, targets=x.sum())


def make_runner(work_dir, max_iters, resume):
    return Runner(
        model=TinyRegressor(),
        work_dir=str(work_dir),
        default_scope='mae_transfer',
        train_dataloader=dict(dataset=RandomPairs(), sampler=dict(type='DefaultSampler', shuffle=True),
                              batch_size=4, num_workers=0),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-2)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0),
        resume=resume,
    )


def test_runner_resumes_from_its_checkpoint_and_continues(tmp_path):
    first = make_runner(tmp_path, max_iters=2, resume=False)
    first.train()
    checkpoint = tmp_path / 'iter_2.pth'
    assert checkpoint.exists()
    # The file really holds what PyTorch >= 2.6 refuses by default; our allowlist lets it through.
    state = safe_torch_load(str(checkpoint))
    assert type(state['message_hub']['log_scalars']['train/loss']).__name__ == 'HistoryBuffer'

    second = make_runner(tmp_path, max_iters=4, resume=True)
    second.train()
    assert second.iter == 4
    resumed_weight = safe_torch_load(str(checkpoint))['state_dict']['linear.weight']
    assert not torch.equal(second.model.linear.weight.detach(), resumed_weight), 'training did not continue'
    assert (tmp_path / 'iter_4.pth').exists()


def test_official_mae_style_checkpoint_with_namespace_and_numpy_loads(tmp_path):
    path = tmp_path / 'mae_pretrain_like.pth'
    torch.save({'model': {'cls_token': torch.zeros(1, 1, 8)}, 'args': argparse.Namespace(mask_ratio=0.75),
                'epoch': np.int64(799), 'scaler': {'scale': np.float32(1024.0)},
                'history': np.arange(3, dtype=np.float64)}, path)
    loaded = safe_torch_load(str(path))
    assert loaded['args'].mask_ratio == 0.75
    assert int(loaded['epoch']) == 799
    np.testing.assert_array_equal(loaded['history'], np.arange(3))


class NotAllowed:
    """Any class: unpickling it could run code (its __reduce__ decides what is called)."""

    def __init__(self):
        self.payload = 1


def test_checkpoint_with_arbitrary_class_is_refused_with_clear_message(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': collections.OrderedDict(w=torch.zeros(1)), 'extra': NotAllowed()}, path)
    with pytest.raises(UnsafeCheckpointError, match=r'Refusing to load .*NotAllowed'):
        safe_torch_load(str(path))
    # mmengine's own loading path (load_from / resume / init_cfg Pretrained) is covered too.
    with pytest.raises(UnsafeCheckpointError, match='NotAllowed'):
        load_checkpoint(torch.nn.Linear(1, 1), str(path))


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        load_checkpoint(torch.nn.Linear(1, 1), str(tmp_path / 'missing.pth'))


class SneakyGetattr:
    """Pickles as getattr(HistoryBuffer, '__init__'): the first step of a walk towards os.system."""

    def __reduce__(self):
        from mmengine.logging.history_buffer import HistoryBuffer
        return getattr, (HistoryBuffer, '__init__')


def test_getattr_is_allowed_only_for_history_buffer_statistics(tmp_path):
    path = tmp_path / 'sneaky.pth'
    torch.save({'x': SneakyGetattr()}, path)
    with pytest.raises(pickle.UnpicklingError, match='__init__'):
        safe_torch_load(str(path))


@pytest.mark.parametrize('damage', ['truncated', 'empty', 'text'])
def test_a_damaged_or_foreign_file_gets_a_clear_error(tmp_path, damage):
    good = tmp_path / 'good.pth'
    torch.save({'state_dict': {'w': torch.zeros(256)}}, good)
    bad = tmp_path / 'bad.pth'
    bad.write_bytes({'truncated': good.read_bytes()[:good.stat().st_size // 2], 'empty': b'',
                     'text': b'<html>404 Not Found</html>'}[damage])
    with pytest.raises(CorruptCheckpointError, match='not a readable PyTorch checkpoint'):
        safe_torch_load(str(bad))
    with pytest.raises(CorruptCheckpointError):
        load_checkpoint(torch.nn.Linear(1, 1), str(bad))  # mmengine's path (load_from, resume) too


def test_a_checkpoint_of_another_arch_size_is_refused_naming_the_shapes(tmp_path):
    from mae_transfer.models import MAEViT, mae_vit_small_patch16
    path = tmp_path / 'small.pth'
    torch.save({'model': mae_vit_small_patch16(img_size=32).state_dict()}, path)
    backbone = MAEViT(arch='tiny', img_size=32, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(ValueError, match=r'does not fit this backbone[\s\S]*\(1, 1, 384\) vs model \(1, 1, 192\)'):
        backbone.init_weights()
