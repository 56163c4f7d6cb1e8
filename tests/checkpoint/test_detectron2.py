"""detectron2 ViTDet checkpoints (`model_final_*.pkl`) load into MAEViT + SimpleFPN, read without running code."""
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


def test_the_detectron2_format_reads_the_pkl_and_its_parts_are_the_pyramid(tmp_path):
    """The format's own reader reads the `.pkl` (`formats.reader_for`, also behind mmengine's local loader); read or
    as released (tensors instead of numpy arrays), the file gives the same encoder, and the pyramid as our
    SimpleFPN's parts; detectron2's heads have no mmdet counterpart and stay among the dropped keys."""
    path = tmp_path / 'model_final_61ccd1.pkl'
    d2 = write_d2_checkpoint(path)
    assert reader_for(path) is load_detectron2_checkpoint and reader_for(tmp_path / 'model.pth') is None
    read = canonicalize(read_checkpoint_file(path)[0])
    pyramid = {'neck.' + rename_detectron2_pyramid(key): key for key in d2 if key.startswith('backbone.simfp_')}
    assert read.meta.source_format == 'detectron2' and read.parts_from == {name: name for name in pyramid}
    released = canonicalize({'model': {key: torch.from_numpy(value) for key, value in d2.items()}})
    assert (released.meta.source_format, released.meta.source_prefix) == ('detectron2', 'backbone.net.')
    assert released.parts_from == pyramid and released.encoder.keys() == read.encoder.keys()
    assert all(torch.equal(released.parts[name], read.parts[name]) for name in pyramid)
    assert {'roi_heads.box_predictor.cls_score.weight', 'proposal_generator.rpn_head.conv.conv0.weight'} <= (
        set(released.dropped) & set(read.dropped))


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
