"""Layer-wise lr decay: one pure name -> layer id function, groups built from mmdet, mmseg and our scopes."""
import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from torch import nn

from mae_transfer.engine import LayerDecayOptimWrapperConstructor, get_layer_id
from mae_transfer.models import ViTEncoder


@pytest.mark.parametrize('name, layer_id', [
    ('backbone.patch_embed.proj.weight', 0),
    ('backbone.cls_token', 0),
    ('backbone.pos_embed', 0),
    ('patch_embed.proj.bias', 0),
    ('backbone.blocks.0.attn.qkv.weight', 1),
    ('module.backbone.blocks.3.attn.rel_pos_h', 4),
    ('mae.blocks.11.norm1.weight', 12),
    ('backbone.norm.weight', 13),
    ('neck.lateral_convs.0.conv.weight', 13),
    ('mae.decoder_blocks.0.attn.qkv.weight', 13),  # not an encoder block
    ('roi_head.bbox_head.fc_cls.weight', 13),
])
def test_layer_id_of_parameter_names(name, layer_id):
    assert get_layer_id(name, num_layers=12) == layer_id


class Detector(nn.Module):
    """A ViT backbone under `backbone.` with a head after it, as mmdet and mmseg models have."""

    def __init__(self):
        super().__init__()
        self.backbone = ViTEncoder(img_size=32, patch_size=16, embed_dim=32, depth=3, num_heads=2,
                                   trainable_pos_embed=True)
        self.head = nn.Linear(32, 4)


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg', 'mae_transfer'])
def test_constructor_builds_decayed_groups_from_any_scope(scope):
    model = Detector()
    model.backbone.patch_embed.proj.weight.requires_grad_(False)  # frozen: must not be optimised
    cfg = dict(constructor='mae_transfer.LayerDecayOptimWrapperConstructor',
               optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.1),
               paramwise_cfg=dict(num_layers=3, decay_rate=0.5))
    with DefaultScope.overwrite_default_scope(scope):
        wrapper = build_optim_wrapper(model, cfg)
    by_name = {}
    for group in wrapper.optimizer.param_groups:
        for name in group['param_names']:
            by_name[name] = group
    assert 'backbone.patch_embed.proj.weight' not in by_name
    expected = {  # name: (lr, weight decay); lr = 1e-3 * 0.5 ** (3 + 1 - layer id)
        'backbone.cls_token': (1e-3 * 0.5 ** 4, 0.0),
        'backbone.pos_embed': (1e-3 * 0.5 ** 4, 0.0),
        'backbone.patch_embed.proj.bias': (1e-3 * 0.5 ** 4, 0.0),
        'backbone.blocks.0.attn.qkv.weight': (1e-3 * 0.5 ** 3, 0.1),
        'backbone.blocks.0.attn.qkv.bias': (1e-3 * 0.5 ** 3, 0.0),
        'backbone.blocks.2.mlp.fc2.weight': (1e-3 * 0.5 ** 1, 0.1),
        'backbone.blocks.2.norm2.weight': (1e-3 * 0.5 ** 1, 0.0),
        'backbone.norm.weight': (1e-3, 0.0),
        'head.weight': (1e-3, 0.1),
    }
    for name, (lr, weight_decay) in expected.items():
        assert by_name[name]['lr'] == pytest.approx(lr), name
        assert by_name[name]['weight_decay'] == weight_decay, name
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(by_name) == trainable

    loss = model.head(model.backbone.forward_features(torch.randn(2, 3, 32, 32))).sum()
    before = model.backbone.blocks[0].attn.qkv.weight.detach().clone()
    wrapper.update_params(loss)
    assert not torch.equal(before, model.backbone.blocks[0].attn.qkv.weight)


def test_table_and_bad_config():
    constructor = LayerDecayOptimWrapperConstructor(
        dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)), dict(num_layers=3, decay_rate=0.75))
    params = []
    constructor.add_params(params, Detector())
    table = constructor.describe(params)
    assert 'layer' in table and len(table.splitlines()) == 2 + len(params)
    assert [g['layer_id'] for g in params] == sorted(g['layer_id'] for g in params)
    with pytest.raises(ValueError, match='num_layers'):
        LayerDecayOptimWrapperConstructor(dict(optimizer=dict(type='AdamW', lr=1e-3)), dict(decay_rate=0.7))
    with pytest.raises(ValueError, match='layer_decay'):
        LayerDecayOptimWrapperConstructor(dict(optimizer=dict(type='AdamW', lr=1e-3)),
                                          dict(num_layers=12, layer_decay=0.7))


def test_vitdet_weight_decay_rule():
    """'vitdet' exempts only nn.LayerNorm parameters and pos_embed (detectron2's get_default_optimizer_params with
    weight_decay_norm=0 and a pos_embed override); biases, rel-pos tables and channel LayerNorms are decayed."""
    from mae_transfer.models.necks.simple_fpn import LayerNorm2d

    model = Detector()
    model.neck_norm = LayerNorm2d(4)  # a channel LayerNorm as in the neck and heads: decayed
    model.backbone.blocks[0].attn.rel_pos_h = nn.Parameter(torch.zeros(3, 16))
    optimizer = dict(type='AdamW', lr=1e-3, weight_decay=0.1)
    with pytest.raises(ValueError, match='weight_decay_rule'):
        LayerDecayOptimWrapperConstructor(dict(optimizer=optimizer), dict(num_layers=3, weight_decay_rule='d2'))
    groups = {}
    for rule in ('mae', 'vitdet'):
        params = []
        LayerDecayOptimWrapperConstructor(dict(optimizer=optimizer), dict(num_layers=3, weight_decay_rule=rule)
                                          ).add_params(params, model)
        groups[rule] = {n for g in params if g['weight_decay'] == 0 for n in g['param_names']}
    layer_norms = {f'backbone.{name}' for name, module in model.backbone.named_modules()
                   if isinstance(module, nn.LayerNorm) for name in (f'{name}.weight', f'{name}.bias')}
    assert groups['vitdet'] == layer_norms | {'backbone.pos_embed'}
    assert {'backbone.blocks.0.attn.rel_pos_h', 'backbone.cls_token', 'head.bias', 'neck_norm.weight',
            'backbone.blocks.0.attn.qkv.bias'} <= groups['mae']  # the default rule is unchanged
