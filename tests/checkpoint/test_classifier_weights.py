"""Whole classifiers load, head included: official fine-tuned MAE files (`{'model': ...}`, encoder + `fc_norm` +
`head`, no final `norm`), timm ViT classifiers (global or token pooling) and our own checkpoints, through
the one `checkpoint.load_weights` (also behind `tools/test.py`'s `load_from`, via `checkpoint.mmengine_bridge`)."""
import argparse
import json

import pytest
import torch
from mmengine.config import Config
from timm.models.vision_transformer import VisionTransformer

import mae_transfer.checkpoint as checkpoint_package
from mae_transfer.checkpoint import PartialCheckpointError, load_weights, mmengine_bridge
from mae_transfer.checkpoint import canonical as canonical_module
from mae_transfer.checkpoint.formats import detect
from mae_transfer.datasets.synthetic import ensure_synthetic, synthetic_data_options
from mae_transfer.models.classifiers import ViTClassifier
from mae_transfer.utils.configs import CONFIG_ROOT, build_model

FT_BASE = CONFIG_ROOT / 'cls' / 'ft_vit-base-p16_8xb128-coslr-100e_in1k-224x224.py'
FT_TINY = CONFIG_ROOT / 'cls' / 'ft_vit-tiny-p16_1xb32-600i_synthetic-64x64.py'


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every tensor random and O(1)-scaled (norms around 1, a head far from its 2e-5 init), so that a tensor
    left unloaded changes the logits."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if name.endswith('.weight') and param.ndim == 1:  # LayerNorm scales
                param.copy_(1.0 + 0.1 * noise)
            else:
                param.copy_(0.02 * noise if param.ndim > 1 or name.endswith('.bias') else 0.1 * noise)
    return model


def relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return ((ours - reference).norm() / reference.norm()).item()


def timm_vit(img_size, num_classes, global_pool='avg', embed_dim=192, depth=4, num_heads=3, seed=0):
    # official models_vit.py with global_pool=True is timm's VisionTransformer(global_pool='avg', fc_norm=True):
    # the same keys (fc_norm and head, no final norm) and computation
    model = VisionTransformer(img_size=img_size, patch_size=16, embed_dim=embed_dim, depth=depth,
                              num_heads=num_heads, num_classes=num_classes, global_pool=global_pool,
                              fc_norm=global_pool == 'avg', qkv_bias=True)
    return randomize(model, seed).eval()


def official_checkpoint(reference: VisionTransformer, arch: str) -> dict:
    """The layout of `mae_finetuned_vit_*.pth`: the model under 'model', its arguments as a Namespace."""
    return {'model': {k: v.clone() for k, v in reference.state_dict().items()},
            'args': argparse.Namespace(model=f'vit_{arch}_patch16', global_pool=True)}


def official_keys(reference):
    return [key if key.startswith(('fc_norm', 'head')) else 'backbone.' + key for key in reference.state_dict()]


def used_keys(model):
    """The classifier's keys, less the final norm a global-pool model keeps by name but does not apply."""
    unused = ('backbone.norm.',) if model.pool == 'avg' else ()
    return sorted(key for key in model.state_dict() if not key.startswith(unused))


def test_official_finetuned_layout_has_no_final_norm_and_a_head():
    state_dict = official_checkpoint(timm_vit(64, 8), 'tiny')['model']
    assert not any(key.startswith('norm.') for key in state_dict)
    assert set(canonical_module.canonicalize(state_dict).parts) == {'fc_norm.weight', 'fc_norm.bias', 'head.weight',
                                                                    'head.bias'}


def test_vit_b_finetune_config_gives_the_official_models_logits():
    """Our ViT-B fine-tune config's model, loaded with an official fine-tuned checkpoint (random weights), gives
    the logits of the reference computation loaded with the same state dict."""
    torch.manual_seed(0)
    reference = timm_vit(224, 1000, embed_dim=768, depth=12, num_heads=12)
    cfg = Config.fromfile(str(FT_BASE))
    cfg.model.backbone.init_cfg = None
    model = build_model(cfg).eval()
    report = load_weights(model, official_checkpoint(reference, 'base'), strict=True, complete=True)
    assert report.ok and not report.dropped_keys and not report.unexpected_keys, report
    assert sorted(report.loaded_keys) == sorted(official_keys(reference)), 'every tensor of the file is loaded'
    assert sorted(report.loaded_keys) == used_keys(model), 'every tensor the model computes with'
    image = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, expected = model(image, mode='tensor'), reference(image)
    assert relative_error(ours, expected) < 1e-4


@pytest.mark.parametrize('pool', ['avg', 'cls'])
def test_timm_classifier_loads_head_included(pool):
    """timm global pooling (fc_norm + head) into pool='avg', token pooling (norm + head) into pool='cls'."""
    reference = timm_vit(64, 8, global_pool='avg' if pool == 'avg' else 'token', seed=2)
    model = ViTClassifier(backbone=dict(type='MAEViT', arch='tiny', img_size=64), num_classes=8, pool=pool).eval()
    report = load_weights(model, reference.state_dict(), strict=True, complete=True)
    assert sorted(report.loaded_keys) == used_keys(model) == sorted(official_keys(reference))
    image = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert relative_error(model(image, mode='tensor'), reference(image)) < 1e-4


def test_own_linear_probe_checkpoint_round_trips():
    probe = ViTClassifier(backbone=dict(type='MAEViT', arch='tiny', img_size=64), num_classes=8,
                          protocol='linear_probe')
    randomize(probe, seed=4)
    probe.head[0].running_mean.normal_()
    probe.head[0].running_var.uniform_(0.5, 2.0)
    fresh = ViTClassifier(backbone=dict(type='MAEViT', arch='tiny', img_size=64), num_classes=8,
                          protocol='linear_probe')
    report = load_weights(fresh, {'state_dict': probe.state_dict(), 'meta': {}}, strict=True, complete=True)
    assert sorted(report.loaded_keys) == sorted(probe.state_dict())
    for key, value in probe.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


def test_encoder_only_file_leaves_a_new_head_and_cannot_be_evaluated_and_a_wrong_head_is_refused():
    reference = timm_vit(64, 8)
    encoder_only = {k: v for k, v in reference.state_dict().items() if not k.startswith(('fc_norm', 'head'))}
    model = ViTClassifier(backbone=dict(type='MAEViT', arch='tiny', img_size=64), num_classes=8)
    report = load_weights(model, encoder_only, strict=True)  # fine-tuning starts here: the head is new by design
    assert set(report.new_modules) == {'fc_norm.weight', 'fc_norm.bias', 'head.weight', 'head.bias'}
    assert report.ok and not report.missing_keys
    with pytest.raises(PartialCheckpointError, match=r'leaves fc_norm, head of the ViTClassifier'):
        load_weights(model, encoder_only, complete=True)
    other = ViTClassifier(backbone=dict(type='MAEViT', arch='tiny', img_size=64), num_classes=5)
    with pytest.raises(ValueError, match='another number of classes'):
        load_weights(other, reference.state_dict())


def test_tools_test_evaluates_an_official_finetuned_file_with_every_tensor(tmp_path, monkeypatch):
    """`tools/test.py` with the tiny fine-tune config and an official-layout file at another grid: every tensor
    of the model loads (pos_embed resized), the head too, and the metrics come from that head."""
    from mae_transfer.tools import test as test_tool
    data_root = ensure_synthetic('cls', tmp_path / 'data', train_per_class=1, val_per_class=1, image_size=(40, 48))
    reference = timm_vit(64, 8, seed=5)
    with torch.no_grad():  # every image predicted as class 3: top-1 = its share of the test set
        reference.head.weight.zero_()
        reference.head.bias.copy_(torch.nn.functional.one_hot(torch.tensor(3), 8).float())
    path = tmp_path / 'mae_finetuned_vit_tiny.pth'
    torch.save(official_checkpoint(reference, 'tiny'), path)

    cfg = Config.fromfile(str(FT_TINY))
    cfg.merge_from_dict(synthetic_data_options('cls', data_root))
    cfg.test_dataloader.update(num_workers=0, persistent_workers=False, batch_size=4)
    cfg.test_dataloader.dataset.transform.input_size = 32
    config_path = tmp_path / 'ft_tiny.py'
    cfg.dump(str(config_path))

    reports = []

    def recording(model, checkpoint, **kwargs):
        reports.append((model, load_weights(model, checkpoint, **kwargs)))
        return reports[-1][1]

    monkeypatch.setattr(mmengine_bridge, 'load_weights', recording)  # runner.test() loads `load_from` through it
    detections = []

    def counting(keys):
        detections.append(len(keys))
        return detect(keys)

    monkeypatch.setattr(canonical_module, 'detect', counting)
    out = tmp_path / 'metrics.json'
    test_tool.main([str(config_path), str(path), '--work-dir', str(tmp_path / 'work'), '--out', str(out)])
    (model, report), = reports
    assert len(detections) == 1, 'the walk from tools/test.py to load_state_dict detects the format once'
    assert report.ok and report.resized_keys == ['backbone.pos_embed'] and not report.unexpected_keys
    assert sorted(report.loaded_keys) == used_keys(model) == sorted(official_keys(reference))
    for name in ('fc_norm.weight', 'fc_norm.bias', 'head.bias', 'backbone.blocks.3.mlp.fc2.weight'):
        assert torch.equal(model.state_dict()[name], reference.state_dict()[name.replace('backbone.', '')]), name
    metrics = json.loads(out.read_text())
    assert metrics['accuracy/top1'] == pytest.approx(100 / 8)


def test_apis_init_model_reads_an_official_finetuned_file(tmp_path):
    """`apis.init_model` (tools/infer.py) loads the same way: the official file's logits, head included."""
    from mae_transfer.apis.classify import init_model
    reference = timm_vit(128, 8, seed=6)  # the tiny config's grid: nothing resized
    path = tmp_path / 'mae_finetuned_vit_tiny.pth'
    torch.save(official_checkpoint(reference, 'tiny'), path)
    model = init_model(str(FT_TINY), str(path))
    image = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        assert relative_error(model(image, mode='tensor'), reference(image)) < 1e-4


def test_an_unknown_file_is_named_by_its_path_once(tmp_path):
    resnet = tmp_path / 'resnet.pth'
    torch.save({'conv1.weight': torch.ones(2, 3, 3, 3)}, resnet)
    classifier = ViTClassifier(backbone=dict(type='MAEViT', arch='tiny', img_size=64), num_classes=3)
    with pytest.raises(checkpoint_package.UnknownCheckpointFormatError) as error:
        load_weights(classifier, str(resnet))
    message = str(error.value)
    assert message.startswith(f'{resnet}: cannot identify this checkpoint') and 'the given checkpoint' not in message
    with pytest.raises(checkpoint_package.UnknownCheckpointFormatError, match=r'^the given checkpoint: cannot'):
        load_weights(classifier, torch.load(resnet))  # already loaded: named once


def test_mmengine_load_checkpoint_reads_an_official_finetuned_file_whole(tmp_path):
    """What `load_from` and every OpenMMLab tool call: the encoder, `fc_norm` and `head` all load."""
    from mmengine.runner import load_checkpoint
    reference = timm_vit(64, 8, seed=8)
    path = tmp_path / 'mae_finetuned_vit_tiny.pth'
    torch.save(official_checkpoint(reference, 'tiny'), path)
    model = ViTClassifier(backbone=dict(type='MAEViT', arch='tiny', img_size=64), num_classes=8).eval()
    load_checkpoint(model, str(path), map_location='cpu')
    image = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        assert relative_error(model(image, mode='tensor'), reference(image)) < 1e-4
