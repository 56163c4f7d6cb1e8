"""detectron2 ViTDet checkpoints (`model_final_*.pkl`) load into MAEViT + SimpleFPN and mmdet's Mask R-CNN heads,
read without running code (the whole-model parity: tests/models/test_detectron2_vitdet_parity.py)."""
import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.runner.checkpoint import load_checkpoint
from torch import nn

from mae_transfer.checkpoint import (CorruptCheckpointError, UnsafeCheckpointError, canonicalize,
                                     load_pretrained_encoder, read_checkpoint_file)
from mae_transfer.checkpoint.formats import load_detectron2_checkpoint, reader_for, rename_detectron2_pyramid
from mae_transfer.checkpoint.formats.detectron2_heads import rename_detectron2_head
from mae_transfer.models.backbones.mae_vit import MAEViT
from mae_transfer.models.necks.simple_fpn import SimpleFPN
from mae_transfer.tools.convert import main as convert_main

DIM, OUT = 192, 32


def tiny_vitdet() -> nn.Module:
    model = nn.Module()
    model.backbone = MAEViT(arch='tiny', img_size=64, window_size=2, global_attn_indexes=(1, 3), use_rel_pos=True,
                            rel_pos_img_size=64)
    model.neck = SimpleFPN(in_channels=DIM, out_channels=OUT)
    return model


def d2_pyramid_names():
    """detectron2's published SimpleFeaturePyramid keys (norm='LN'): simfp_2 = ConvT, LN, GELU, ConvT, conv+LN x2;
    simfp_3 = ConvT, conv+LN x2; simfp_4 = conv+LN x2; simfp_5 = MaxPool, conv+LN x2."""
    names = []
    for stage, stem in ((2, {0: ('weight', 'bias'), 1: ('weight', 'bias'), 3: ('weight', 'bias')}),
                        (3, {0: ('weight', 'bias')}), (4, {}), (5, {})):
        first_conv = {2: 4, 3: 1, 4: 0, 5: 1}[stage]
        names += [f'backbone.simfp_{stage}.{layer}.{param}' for layer, params in stem.items() for param in params]
        for layer in (first_conv, first_conv + 1):
            names += [f'backbone.simfp_{stage}.{layer}.{param}' for param in ('weight', 'norm.weight', 'norm.bias')]
    return names


def write_d2_checkpoint(path, protocol=pickle.HIGHEST_PROTOCOL):
    """A file as detectron2's model zoo publishes it: a plain pickle of numpy arrays under 'model'."""
    rng = np.random.default_rng(0)
    reference = tiny_vitdet()
    model = {}
    for name, tensor in reference.backbone.state_dict().items():
        if name != 'cls_token' and not name.startswith('norm.'):  # detectron2's ViT has neither
            model[f'backbone.net.{name}'] = rng.standard_normal(tuple(tensor.shape)).astype(np.float32)
    neck_shapes = {k: tuple(v.shape) for k, v in reference.neck.state_dict().items()}
    for name in d2_pyramid_names():
        model[name] = rng.standard_normal(neck_shapes[rename_detectron2_pyramid(name)]).astype(np.float32)
    model['proposal_generator.rpn_head.conv.conv0.weight'] = rng.standard_normal((OUT, OUT, 3, 3)).astype(np.float32)
    model['roi_heads.box_predictor.cls_score.weight'] = rng.standard_normal((81, 256)).astype(np.float32)
    model['roi_heads.box_head.1.fc1.weight'] = rng.standard_normal((8, 4)).astype(np.float32)  # a cascade stage
    with open(path, 'wb') as handle:
        pickle.dump({'model': model, '__author__': 'Detectron2 Model Zoo', 'matching_heuristics': True}, handle,
                    protocol=protocol)
    return model


def test_pyramid_names_cover_simple_fpn_one_to_one():
    names = [rename_detectron2_pyramid(name) for name in d2_pyramid_names()]
    assert sorted(names) == sorted(SimpleFPN(in_channels=DIM, out_channels=OUT).state_dict())


@pytest.mark.parametrize('protocol', [2, pickle.HIGHEST_PROTOCOL])
def test_detectron2_checkpoint_loads_backbone_and_pyramid(tmp_path, protocol):
    path = tmp_path / 'model_final_61ccd1.pkl'
    d2 = write_d2_checkpoint(path, protocol)

    model = tiny_vitdet()  # directly, as tools/test.py / load_from read it through mmengine
    load_checkpoint(model, str(path), map_location='cpu', strict=False)
    params = model.state_dict()
    for name, array in d2.items():
        if name.startswith('backbone.net.'):
            ours = 'backbone.' + name[len('backbone.net.'):]
        elif name.startswith('backbone.simfp_'):
            ours = 'neck.' + rename_detectron2_pyramid(name)
        else:
            continue
        assert torch.equal(params[ours], torch.from_numpy(array)), name
    with torch.no_grad():
        maps = model.neck(model.backbone(torch.randn(1, 3, 64, 64)))
    assert [tuple(m.shape[-2:]) for m in maps] == [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]

    state_dict, meta = load_pretrained_encoder(path)  # the encoder path: init_cfg Pretrained, convert
    assert meta.source_format == 'detectron2' and meta.depth == 4 and meta.embed_dim == DIM
    rel_pos = d2['backbone.net.blocks.3.attn.rel_pos_h']
    assert torch.equal(state_dict['blocks.3.attn.rel_pos_h'], torch.from_numpy(rel_pos))
    assert not state_dict['cls_token'].any()  # detectron2's ViT has none; a zero token, never used by ViTDet
    assert {'roi_heads.box_predictor.cls_score.weight', 'neck.stems.0.0.weight'} <= set(meta.dropped_keys)

    backbone = MAEViT(arch='tiny', img_size=64, window_size=2, global_attn_indexes=(1, 3), use_rel_pos=True,
                      rel_pos_img_size=64, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    backbone.init_weights()
    assert torch.equal(backbone.blocks[0].mlp.fc1.weight, torch.from_numpy(d2['backbone.net.blocks.0.mlp.fc1.weight']))

    assert convert_main([str(path), str(tmp_path / 'vitdet_backbone.pth')]) == 0


def test_the_detectron2_format_reads_the_pkl_and_its_parts_are_the_pyramid_and_heads(tmp_path):
    """The format's own reader reads the `.pkl` (`formats.reader_for`, also behind mmengine's local loader); read or
    as released (tensors instead of numpy arrays), the file gives the same encoder, the pyramid as our SimpleFPN's
    parts and the Mask R-CNN heads as mmdet's, each with its name in the file; what our heads do not have (a
    cascade's second stage) stays among the dropped keys."""
    path = tmp_path / 'model_final_61ccd1.pkl'
    d2 = write_d2_checkpoint(path)
    assert reader_for(path) is load_detectron2_checkpoint and reader_for(tmp_path / 'model.pth') is None
    read = canonicalize(read_checkpoint_file(path)[0])
    pyramid = {'neck.' + rename_detectron2_pyramid(key): key for key in d2 if key.startswith('backbone.simfp_')}
    heads = {'rpn_head.rpn_conv.0.conv.weight': 'proposal_generator.rpn_head.conv.conv0.weight',
             'roi_head.bbox_head.fc_cls.weight': 'roi_heads.box_predictor.cls_score.weight'}
    assert read.meta.source_format == 'detectron2'
    assert read.parts_from == {**{name: name for name in pyramid}, **heads}  # the reader renamed the pyramid
    released = canonicalize({'model': {key: torch.from_numpy(value) for key, value in d2.items()}})
    assert (released.meta.source_format, released.meta.source_prefix) == ('detectron2', 'backbone.net.')
    assert released.parts_from == {**pyramid, **heads} and released.encoder.keys() == read.encoder.keys()
    assert all(torch.equal(released.parts[name], read.parts[name]) for name in {**pyramid, **heads})
    assert 'roi_heads.box_head.1.fc1.weight' in set(released.dropped) & set(read.dropped)
    assert not any(key.startswith('roi_heads.') or '.1.fc1' in key for key in released.parts)


def test_head_names_cover_our_configs_heads_one_to_one():
    """Every parameter of detectron2's ViTDet RPN and RoI heads (the reference's names, as released) has one
    tensor of the same shape in our ViT-B config's RPNHead / Shared4Conv1FCBBoxHead / FCNMaskHead, and back."""
    from mmengine.config import Config

    from helpers.detectron2_vitdet import RPN, ROIHeads
    from mae_transfer.utils.configs import CONFIG_ROOT, build_model
    cfg = Config.fromfile(str(CONFIG_ROOT / 'det' / 'mask-rcnn_vit-base-p16_16xb4-amp-lsj-184ki_coco-1024x1024.py'))
    cfg.model.backbone.init_cfg = None
    ours = {key: tuple(value.shape) for key, value in build_model(cfg).state_dict().items()
            if key.startswith(('rpn_head.', 'roi_head.'))}
    theirs = {**{f'proposal_generator.{key}': value for key, value in RPN().state_dict().items()},
              **{f'roi_heads.{key}': value for key, value in ROIHeads(80).state_dict().items()}}
    renamed = {rename_detectron2_head(key): tuple(value.shape) for key, value in theirs.items()}
    assert renamed == ours
    assert rename_detectron2_head('roi_heads.mask_head.mask_fcn4.norm.bias') == 'roi_head.mask_head.convs.3.ln.bias'
    assert rename_detectron2_head('proposal_generator.rpn_head.conv.weight') == 'rpn_head.rpn_conv.weight'  # 1 conv
    assert rename_detectron2_head('roi_heads.box_head.0.conv1.weight') is None  # cascade: not our config


def test_infer_runs_a_detectron2_file_whole(tmp_path):
    """`mae-transfer infer CONFIG model_final_*.pkl IMAGE`: a file in detectron2's names (the tiny twin's own
    weights renamed to them) loads whole, with no --allow-partial, and detects with the config's class names."""
    import json

    from mmengine.config import Config

    from helpers.detectron2_vitdet import RPN, ROIHeads
    from helpers.paths import REPO
    from mae_transfer.apis.detect import init_model
    from mae_transfer.tools.infer import main as infer_main
    from mae_transfer.utils.configs import CONFIG_ROOT, build_model
    config = CONFIG_ROOT / 'det' / 'mask-rcnn_vit-tiny-p16_1xb4-lsj-600i_synthetic-128x128.py'
    cfg = Config.fromfile(str(config))
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(0)
    ours = build_model(cfg).state_dict()
    d2_names = [f'proposal_generator.{key}' for key in RPN().state_dict()] + \
        [f'roi_heads.{key}' for key in ROIHeads(3).state_dict()] + d2_pyramid_names()
    model = {name: ours[rename_detectron2_head(name) or 'neck.' + rename_detectron2_pyramid(name)].numpy()
             for name in d2_names}
    model.update({'backbone.net.' + key[len('backbone.'):]: value.numpy() for key, value in ours.items()
                  if key.startswith('backbone.') and key not in ('backbone.cls_token', 'backbone.norm.weight',
                                                                 'backbone.norm.bias')})
    path = tmp_path / 'model_final_tiny.pkl'
    with open(path, 'wb') as handle:
        pickle.dump({'model': model, '__author__': 'Detectron2 Model Zoo', 'matching_heuristics': True}, handle)

    loaded = init_model(config, str(path)).state_dict()  # complete: every parameter from the file
    assert all(torch.equal(loaded[key], value) for key, value in ours.items() if key != 'backbone.cls_token')
    photo = REPO / 'tests' / 'data' / 'coco_sample' / 'val2017' / '000000040083.jpg'
    infer_main([str(config), str(path), str(photo), '--out-dir', str(tmp_path / 'out'), '--json-lines',
                '--score-thr', '0'])
    lines = [json.loads(line) for line in (tmp_path / 'out' / 'images.jsonl').read_text().splitlines()]
    assert len(lines) == 1 and list((tmp_path / 'out').glob('000000040083.*'))
    found = {detection['class'] for detection in lines[0]['instances']}
    assert found and found <= {'ellipse', 'rectangle', 'triangle'}, found  # the config's test set names them


class RunsCode:
    def __reduce__(self):
        return os.system, ('echo owned',)


def test_detectron2_pickle_with_another_class_is_refused(tmp_path):
    path = tmp_path / 'model_final_evil.pkl'
    with open(path, 'wb') as handle:
        pickle.dump({'model': {'backbone.net.pos_embed': np.zeros((1, 5, 4), np.float32)}, 'x': RunsCode()}, handle)
    with pytest.raises(UnsafeCheckpointError, match=r'detectron2 checkpoint contains (posix|nt)\.system'):
        load_pretrained_encoder(path)
    with pytest.raises(UnsafeCheckpointError, match='detectron2 checkpoint'):
        load_checkpoint(nn.Linear(1, 1), str(path))

    truncated = tmp_path / 'model_final_cut.pkl'
    write_d2_checkpoint(truncated)
    truncated.write_bytes(truncated.read_bytes()[:1000])
    with pytest.raises(CorruptCheckpointError, match='not a readable detectron2 checkpoint'):
        load_pretrained_encoder(truncated)
