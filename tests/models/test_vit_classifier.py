"""ViTClassifier: which parameters train in each protocol, linear-probe BatchNorm statistics, layer ids, mixup,
predictions, the accuracy metric and LARS."""
import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from mae_transfer.engine.lars import LARS
from mae_transfer.evaluation.accuracy import Accuracy, topk_accuracy
from mae_transfer.models.classifiers import ViTClassifier

NUM_CLASSES = 5
TINY = dict(type='MAEViT', arch='tiny', img_size=32, drop_path_rate=0.1)  # 2 x 2 patches, 4 blocks


def make(protocol, **kwargs):
    torch.manual_seed(0)
    return ViTClassifier(backbone=dict(TINY), num_classes=NUM_CLASSES, protocol=protocol, **kwargs)


def batch(n=4, size=32):
    torch.manual_seed(1)
    return torch.randn(n, 3, size, size), torch.arange(n) % NUM_CLASSES


def names_with_grad(model):
    model.train()
    inputs, labels = batch()
    model.zero_grad(set_to_none=True)
    model(inputs, labels, mode='loss')['loss'].backward()
    return {name for name, param in model.named_parameters() if param.grad is not None and param.grad.abs().sum() > 0}


def test_finetune_trains_every_used_parameter():
    model = make('finetune')
    got = names_with_grad(model)
    expected = {name for name, _ in model.named_parameters() if not name.startswith('backbone.norm.')}
    assert got == expected  # the final norm is unused with global pooling (fc_norm instead), frozen
    assert not any(p.requires_grad for p in model.backbone.norm.parameters())
    assert {'fc_norm.weight', 'head.weight', 'backbone.pos_embed', 'backbone.cls_token',
            'backbone.patch_embed.proj.weight'} <= got
    assert model.head.weight.std().item() < 1e-4  # std 2e-5 initialisation


def test_partial_finetune_freezes_patch_embed_and_first_blocks():
    model = make('partial_finetune', frozen_blocks=2)
    got = names_with_grad(model)
    assert got, 'nothing trained'
    for name in got:
        assert name.startswith(('backbone.blocks.2.', 'backbone.blocks.3.', 'fc_norm.', 'head.')), name
    assert {n for n in got if n.startswith('backbone.blocks.3.')}
    assert set(model.trainable_parameter_names()) == got
    model.train()
    assert not model.backbone.patch_embed.training and not model.backbone.blocks[1].training
    assert model.backbone.blocks[2].training


@pytest.mark.parametrize('frozen_blocks', [-1, 5])
def test_partial_finetune_checks_k(frozen_blocks):
    with pytest.raises(ValueError, match='frozen_blocks'):
        make('partial_finetune', frozen_blocks=frozen_blocks)


def test_linear_probe_trains_head_only_and_updates_bn_statistics():
    model = make('linear_probe')
    bn = model.head[0]
    assert not bn.affine and bn.eps == 1e-6
    before = bn.running_mean.clone(), bn.running_var.clone()
    got = names_with_grad(model)  # one training forward + backward
    assert got == {'head.1.weight', 'head.1.bias'}
    assert model.trainable_parameter_names() == ['head.1.weight', 'head.1.bias']
    # the encoder stays in eval mode although the model was put in train mode; the BatchNorm trains
    assert not any(module.training for module in model.backbone.modules())
    assert bn.training and bn.num_batches_tracked.item() == 1
    assert not torch.allclose(bn.running_mean, before[0]) and not torch.allclose(bn.running_var, before[1])
    state = model.state_dict()
    for key in ('head.0.running_mean', 'head.0.running_var', 'head.0.num_batches_tracked'):
        assert key in state
    assert torch.equal(state['head.0.running_mean'], bn.running_mean)
    # eval mode uses the statistics and leaves them alone
    model.eval()
    frozen = bn.running_mean.clone()
    model(batch()[0], mode='tensor')
    assert torch.equal(bn.running_mean, frozen)


def test_linear_probe_features_are_deterministic_in_train_mode():
    model = make('linear_probe')  # drop_path_rate 0.1 in the backbone config: must be off (eval mode)
    model.train()
    inputs = batch()[0]
    assert torch.equal(model.extract_feat(inputs), model.extract_feat(inputs))


def test_layer_decay_groups_of_the_classifier():
    model = make('partial_finetune', frozen_blocks=1)
    cfg = dict(constructor='LayerDecayOptimWrapperConstructor', optimizer=dict(type='AdamW', lr=1e-3,
               weight_decay=0.05), paramwise_cfg=dict(num_layers=4, decay_rate=0.5))
    with DefaultScope.overwrite_default_scope('mae_transfer'):
        wrapper = build_optim_wrapper(model, cfg)
    layer_of = {name: group['layer_id'] for group in wrapper.optimizer.param_groups for name in group['param_names']}
    assert layer_of['head.weight'] == 5 and layer_of['fc_norm.weight'] == 5
    assert layer_of['backbone.blocks.1.attn.qkv.weight'] == 2 and layer_of['backbone.blocks.3.mlp.fc2.bias'] == 4
    assert not any(name.startswith(('backbone.blocks.0.', 'backbone.patch_embed')) for name in layer_of)  # frozen
    lrs = {group['layer_id']: group['lr'] for group in wrapper.optimizer.param_groups}
    assert lrs[5] == pytest.approx(1e-3) and lrs[2] == pytest.approx(1e-3 * 0.5 ** 3)


def test_mixup_loss_even_and_odd_batches():
    model = make('finetune', mixup=dict(mixup_alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1))
    model.train()
    for n in (4, 3):  # timm's Mixup needs an even batch; an odd one trains unmixed
        inputs, labels = batch(n)
        loss = model(inputs, labels, mode='loss')['loss']
        assert torch.isfinite(loss) and loss.item() > 0


def test_predict_and_accuracy_metric():
    model = make('finetune').eval()
    inputs, labels = batch(6)
    preds = model(inputs, labels, mode='predict')
    assert len(preds) == 6 and preds[0]['pred_score'].shape == (NUM_CLASSES, )
    assert torch.allclose(preds[0]['pred_score'].sum(), torch.tensor(1.0))
    metric = Accuracy(topk=(1, 5))
    metric.process({}, preds)
    result = metric.compute_metrics(metric.results)
    scores = torch.stack([p['pred_score'] for p in preds])
    top1 = 100 * (scores.argmax(1) == labels).float().mean().item()
    assert result['top1'] == pytest.approx(top1) and result['top5'] == pytest.approx(100.0)  # 5 classes


def test_topk_accuracy_by_hand():
    scores = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.1, 0.3]])
    labels = torch.tensor([1, 1, 0, 2])
    acc = topk_accuracy(scores, labels, (1, 2))
    assert acc[1] == pytest.approx(25.0)  # only row 0
    assert acc[2] == pytest.approx(75.0)  # rows 0, 1, 3


def test_lars_adapts_matrices_and_leaves_vectors_plain():
    weight = torch.nn.Parameter(torch.ones(3, 4))
    bias = torch.nn.Parameter(torch.ones(3))
    optimizer = LARS([weight, bias], lr=1.0, momentum=0.0, weight_decay=0.0, trust_coeff=0.001)
    groups = {tuple(p.shape): g for g in optimizer.param_groups for p in g['params']}
    assert groups[(3, 4)]['always_adapt'] and not groups[(3, )]['always_adapt']
    weight.grad, bias.grad = torch.full((3, 4), 2.0), torch.full((3, ), 2.0)
    optimizer.step()
    ratio = 0.001 * torch.ones(3, 4).norm() / torch.full((3, 4), 2.0).norm()  # trust ratio of the matrix
    assert torch.allclose(weight.detach(), 1 - 2.0 * ratio * torch.ones(3, 4))
    assert torch.allclose(bias.detach(), torch.full((3, ), -1.0))  # plain SGD: 1 - lr * 2


def test_lars_is_found_by_name_under_our_scope():
    from mmengine.registry import OPTIMIZERS
    with DefaultScope.overwrite_default_scope('mae_transfer'):
        optimizer = OPTIMIZERS.build(dict(type='LARS', params=[torch.nn.Parameter(torch.ones(2, 2))], lr=0.1))
    assert isinstance(optimizer, LARS)
