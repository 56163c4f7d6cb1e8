"""A trained ViTClassifier converts to a timm VisionTransformer that loads strictly and gives the same logits."""
import json

import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

from mae_transfer.checkpoint import classifier_to_timm
from mae_transfer.models.classifiers import ViTClassifier

NUM_CLASSES = 6


def trained_like(protocol, pool=None):
    """A tiny classifier whose every weight (and BatchNorm statistic) is non-trivial, as after training."""
    torch.manual_seed(0)
    model = ViTClassifier(backbone=dict(type='MAEViT', arch='tiny', img_size=48), num_classes=NUM_CLASSES,
                          protocol=protocol, pool=pool)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
        if protocol == 'linear_probe':
            model.head[0].running_mean.normal_()
            model.head[0].running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.mark.parametrize('protocol,pool,global_pool', [('finetune', None, 'avg'), ('linear_probe', None, 'token'),
                                                       ('finetune', 'cls', 'token')])
def test_timm_loads_strictly_and_matches(protocol, pool, global_pool):
    model = trained_like(protocol, pool)
    checkpoint = {'state_dict': {f'module.{k}': v for k, v in model.state_dict().items()}, 'meta': {}}
    state_dict, kwargs = classifier_to_timm(checkpoint)
    assert kwargs['global_pool'] == global_pool and kwargs['fc_norm'] == (global_pool == 'avg')
    assert kwargs['num_classes'] == NUM_CLASSES and kwargs['img_size'] == 48 and kwargs['num_heads'] == 3
    timm_model = VisionTransformer(**kwargs).eval()
    timm_model.load_state_dict(state_dict, strict=True)
    inputs = torch.randn(3, 3, 48, 48)
    with torch.no_grad():
        ours, theirs = model(inputs, mode='tensor'), timm_model(inputs)
    assert torch.allclose(ours, theirs, atol=1e-5), (ours - theirs).abs().max()


def test_refuses_an_encoder_only_checkpoint():
    model = trained_like('finetune')
    encoder_only = {k: v for k, v in model.state_dict().items() if k.startswith('backbone.')}
    with pytest.raises(ValueError, match='ViTClassifier'):
        classifier_to_timm(encoder_only)


def test_convert_tool_writes_timm_files(tmp_path):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'tools'))
    try:
        import convert_checkpoint
    finally:
        sys.path.pop(0)
    model = trained_like('finetune')
    src = tmp_path / 'iter_10.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {'dataset_meta': {'classes': list('abcdef')}}}, src)
    for name in ('timm.pth', 'timm.safetensors'):
        dst = tmp_path / name
        assert convert_checkpoint.main([str(src), str(dst), '--to-timm']) == 0
        kwargs = json.loads(Path(f'{dst}.json').read_text())
        if dst.suffix == '.pth':
            state_dict = torch.load(dst, weights_only=True)
        else:
            from safetensors.torch import load_file
            state_dict = load_file(dst)
        VisionTransformer(**kwargs).load_state_dict(state_dict, strict=True)
    # the encoder part of a classifier checkpoint still converts to our canonical encoder as before
    assert convert_checkpoint.main([str(src), str(tmp_path / 'encoder.pth')]) == 0
    encoder = torch.load(tmp_path / 'encoder.pth', weights_only=True)['state_dict']
    assert 'blocks.3.mlp.fc2.weight' in encoder and not any(k.startswith(('head', 'fc_norm')) for k in encoder)
