"""The scoped registries: mmdet and mmseg configs reach `mae_transfer.*` classes under their own scope.

The smoke configs build a ViTDet-style Mask R-CNN (MAEViT + SimpleFPN) and an UperNet (MAEViT + Feature2Pyramid).
"""
import subprocess
import sys
import textwrap

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mae_transfer import registry
from mae_transfer.utils.configs import CONFIG_ROOT, build_model

DET_CONFIG = CONFIG_ROOT / 'smoke' / 'mask-rcnn_vit-tiny-p16_toy-64x64.py'
SEG_CONFIG = CONFIG_ROOT / 'smoke' / 'upernet_vit-tiny-p16_toy-64x64.py'


def test_registries_are_scoped_children_of_mmengine_root():
    from mmengine import registry as root
    for name in ('MODELS', 'DATASETS', 'TRANSFORMS', 'METRICS', 'HOOKS', 'OPTIM_WRAPPER_CONSTRUCTORS'):
        ours = getattr(registry, name)
        assert ours.scope == 'mae_transfer'
        assert ours.parent is getattr(root, name)
        assert getattr(root, name).children['mae_transfer'] is ours


def test_mask_rcnn_with_our_backbone_builds_and_trains_under_mmdet_scope():
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    from mmdet.structures.mask import BitmapMasks

    model = build_model(DET_CONFIG)
    assert type(model).__name__ == 'MaskRCNN'
    assert type(model.backbone).__module__ == 'mae_transfer.models.backbones.mae_vit'

    # One real loss step: the built model is usable, not only constructed.
    image = torch.rand(3, 64, 96) * 255
    masks = torch.zeros(1, 64, 96, dtype=torch.uint8)
    masks[0, 10:40, 20:60] = 1
    sample = DetDataSample(metainfo=dict(img_shape=(64, 96), ori_shape=(64, 96), scale_factor=(1., 1.)))
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[20., 10., 60., 40.]]), labels=torch.tensor([1]),
                                       masks=BitmapMasks(masks.numpy(), 64, 96))
    with DefaultScope.overwrite_default_scope('mmdet'):
        data = model.data_preprocessor(dict(inputs=[image], data_samples=[sample]), training=True)
        losses = model(**data, mode='loss')
    assert {'loss_rpn_cls', 'loss_bbox', 'loss_mask'} <= set(losses)
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)
    total.backward()
    assert model.backbone.blocks[0].attn.qkv.weight.grad is not None


def test_upernet_with_our_backbone_builds_and_infers_under_mmseg_scope():
    from mmseg.structures import SegDataSample

    model = build_model(SEG_CONFIG).eval()
    assert type(model).__name__ == 'EncoderDecoder'
    assert type(model.backbone).__module__ == 'mae_transfer.models.backbones.mae_vit'
    image = torch.rand(3, 60, 84) * 255  # sides not multiples of the stride: the preprocessor pads
    sample = SegDataSample(metainfo=dict(img_shape=(60, 84), ori_shape=(60, 84)))
    with DefaultScope.overwrite_default_scope('mmseg'), torch.no_grad():
        data = model.data_preprocessor(dict(inputs=[image], data_samples=[sample]), training=False)
        (result, ) = model(**data, mode='predict')
    assert result.pred_sem_seg.data.shape == (1, 60, 84)
    assert int(result.pred_sem_seg.data.max()) < 4


def test_unprefixed_name_is_not_found_in_mmdet_scope():
    cfg = Config.fromfile(str(DET_CONFIG))
    cfg.model.backbone.type = 'MAEViT'
    with pytest.raises(KeyError, match='MAEViT'):
        build_model(cfg)


def test_lookup_imports_our_modules_lazily_in_a_fresh_process():
    """Only `import mae_transfer` (as custom_imports does): the registry must import our models itself."""
    code = textwrap.dedent(f"""
        import sys
        import mae_transfer
        from mae_transfer.registry import MODEL_LOCATIONS
        registered = [name for name in MODEL_LOCATIONS if name in sys.modules]
        assert not registered, f'import mae_transfer must not import the registering modules: {{registered}}'
        from mae_transfer.utils.configs import build_model
        model = build_model({str(SEG_CONFIG)!r})
        print(type(model.backbone).__module__)
    """)
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith('mae_transfer.models.backbones.mae_vit')
