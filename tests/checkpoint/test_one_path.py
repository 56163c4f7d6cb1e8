"""Weights have one way in: mmengine's entries (`Runner.load_checkpoint` behind `load_from` and `runner.test()`,
`mmengine.runner.load_checkpoint`, the `Pretrained` initialiser of `init_cfg`) reach `checkpoint.load_weights`,
and an evaluation refuses a model whose trained parts kept their initialisation."""
import logging

import mmengine.runner
import mmengine.runner.checkpoint as mmengine_checkpoint
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import WEIGHT_INITIALIZERS
from mmengine.runner import Runner

from mae_transfer.checkpoint import PartialCheckpointError, load_weights, mmengine_bridge
from mae_transfer.datasets.synthetic import ensure_synthetic, synthetic_data_options
from mae_transfer.models import MAEPretrainer
from mae_transfer.utils.configs import CONFIG_ROOT, build_model

DET_TINY = CONFIG_ROOT / 'det' / 'mask-rcnn_vit-tiny-p16_1xb4-lsj-600i_synthetic-128x128.py'


@pytest.fixture(scope='module')
def mae_checkpoint(tmp_path_factory):
    """A tiny MAE pretraining checkpoint as tools/train.py writes it (`mae.*`, encoder and decoder), random."""
    torch.manual_seed(0)
    pretrainer = MAEPretrainer(arch='tiny', img_size=128)
    with torch.no_grad():
        for param in pretrainer.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    path = tmp_path_factory.mktemp('mae') / 'epoch_1.pth'
    torch.save({'state_dict': pretrainer.state_dict(), 'meta': {}}, path)
    return path, pretrainer.mae


def assert_backbone_is_the_encoder(model, encoder):
    own = model.backbone.state_dict()
    for name in ('patch_embed.proj.weight', 'blocks.0.attn.qkv.weight', 'blocks.3.mlp.fc2.bias', 'pos_embed'):
        assert torch.equal(own[name], encoder.state_dict()[name]), name


def test_mmengine_entries_are_routed_to_load_weights():
    assert Runner.load_checkpoint is mmengine_bridge.runner_load_checkpoint
    assert mmengine.runner.load_checkpoint is mmengine_checkpoint.load_checkpoint is mmengine_bridge.load_checkpoint
    assert WEIGHT_INITIALIZERS.get('Pretrained') is mmengine_bridge.MAETransferPretrainedInit
    assert mmengine_checkpoint._load_checkpoint_to_model is mmengine_bridge.load_checkpoint_to_model


def test_mmengine_load_checkpoint_bound_before_the_bridge_still_loads_whole(mae_checkpoint):
    """Code that bound mmengine's own `load_checkpoint` before `import mae_transfer` (mmdet's apis imported
    first) reaches `load_weights` through `_load_checkpoint_to_model`."""
    path, encoder = mae_checkpoint
    model = build_model(str(DET_TINY))
    mmengine_bridge._ORIGINAL['function'](model, str(path), map_location='cpu')
    assert_backbone_is_the_encoder(model, encoder)


def test_load_from_an_encoder_only_checkpoint_fills_the_backbone(mae_checkpoint, tmp_path):
    """`load_from=<MAE pretraining checkpoint>` in a detection config (mmdet's own train.py does the same Runner
    call): the encoder lands in the backbone, the neck and heads are new by design, one report says so."""
    path, encoder = mae_checkpoint
    cfg = Config.fromfile(str(DET_TINY))
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    log_records = []
    handler = logging.Handler()
    handler.emit = lambda record: log_records.append(record.getMessage())
    runner.logger.addHandler(handler)  # the runner's logger is the current one now
    runner.load_checkpoint(str(path))
    runner.logger.removeHandler(handler)
    assert_backbone_is_the_encoder(runner.model, encoder)
    assert any('encoder-only checkpoint: neck, roi_head.bbox_head, roi_head.mask_head, rpn_head' in m
               for m in log_records)
    assert not any('UNEXPECTED' in m or 'MISSING' in m for m in log_records)


def test_a_child_config_points_a_tiny_twin_at_a_checkpoint(mae_checkpoint, tmp_path):
    """The tiny twins keep `init_cfg` a dict, so a child sets the checkpoint without `_delete_`."""
    path, encoder = mae_checkpoint
    child = tmp_path / 'child.py'
    child.write_text(f"_base_ = ['{DET_TINY}']\nmodel = dict(backbone=dict(init_cfg=dict(checkpoint='{path}')))\n")
    model = build_model(str(child))
    model.init_weights()
    assert_backbone_is_the_encoder(model, encoder)


def test_pretrained_without_a_checkpoint_keeps_the_initialisation():
    model = build_model(str(DET_TINY))
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    model.init_weights()
    assert all(torch.equal(before[k], v) for k, v in model.backbone.state_dict().items())


def test_an_evaluation_refuses_an_encoder_only_checkpoint(mae_checkpoint):
    path, _ = mae_checkpoint
    model = build_model(str(DET_TINY))
    with pytest.raises(PartialCheckpointError) as error:
        load_weights(model, str(path), complete=True)
    message = str(error.value)
    assert message.startswith(f'{path} (mae_transfer checkpoint) leaves backbone, neck, roi_head.bbox_head, '
                              'roi_head.mask_head, rpn_head of the MaskRCNN at their initial values')
    assert '--allow-partial' in message and '\n' not in message


def test_tools_test_stops_on_a_pretraining_checkpoint_and_allow_partial_goes_on(mae_checkpoint, tmp_path):
    from mae_transfer.tools import test as test_tool
    path, _ = mae_checkpoint
    data = ensure_synthetic('det', tmp_path / 'det', num_train=1, num_val=1, seed=0, size_range=(96, 112))
    options = [f'{key}={value}' for key, value in synthetic_data_options('det', data).items()
               if key.startswith(('test_dataloader', 'test_evaluator'))]
    options += ['test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False']
    args = [str(DET_TINY), str(path), '--work-dir', str(tmp_path / 'work'), '--cfg-options', *options]
    with pytest.raises(PartialCheckpointError, match='leaves backbone, neck'):
        test_tool.main(args)
    out = tmp_path / 'metrics.json'
    test_tool.main(args[:2] + ['--allow-partial', '--out', str(out)] + args[2:])
    assert out.is_file()
