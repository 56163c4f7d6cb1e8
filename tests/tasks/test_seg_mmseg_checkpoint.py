"""A whole mmseg UperNet checkpoint (backbone in mmseg's `MAE` naming: `backbone.layers.N.*`, `gamma_1`,
`relative_position_bias_table`, ...; neck and heads mmseg's own) evaluates with our config as it is:
`tools/test.py OUR_CONFIG mmseg_checkpoint.pth`, and through mmengine's `load_checkpoint` alike (both reach
`checkpoint.load_weights`). Only the backbone keys move, so the segmentor computes exactly what it computes from
the same weights in our naming."""
import json

import torch
from mmengine.runner import load_checkpoint

from helpers.mmseg_beit import to_mmseg_beit
from helpers.paths import REPO
from helpers.scripts import run_tool_script
from mae_transfer.datasets.synthetic import ensure_synthetic, synthetic_data_options
from mae_transfer.utils.configs import build_model

TINY_CONFIG = REPO / 'configs' / 'seg' / 'upernet_vit-tiny-p16_1xb8-200i_synthetic-128x128.py'


def _randomised_twin():
    model = build_model(str(TINY_CONFIG)).eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.backbone.named_parameters():
            if name.endswith(('relative_position_bias_table', 'gamma')):  # non-trivial tables and scales
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3 + (1.0 if 'gamma' in name else 0.0))
    return model


def _mmseg_checkpoint(model, path):
    state = model.state_dict()
    backbone = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    converted = {f'backbone.{k}': v for k, v in to_mmseg_beit(backbone).items() if not k.startswith('ln1.')}
    others = {k: v for k, v in state.items() if not k.startswith('backbone.')}
    assert 'backbone.layers.3.gamma_2' in converted and 'backbone.blocks.0.norm1.weight' not in converted
    torch.save({'state_dict': {**converted, **others}, 'meta': {}}, path)  # mmseg's final_norm=False: no ln1
    return path


def _logits(model):
    image = torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model._forward(image)


def test_mmseg_upernet_checkpoint_loads_into_our_config(tmp_path, log_records):
    model = _randomised_twin()
    path = _mmseg_checkpoint(model, tmp_path / 'mmseg_upernet.pth')
    fresh = build_model(str(TINY_CONFIG)).eval()
    load_checkpoint(fresh, str(path), map_location='cpu', strict=True)  # nothing missing, nothing unexpected
    assert any('loaded' in m and '(mmseg_beit checkpoint' in m for m in log_records)
    assert torch.equal(_logits(fresh), _logits(model))


def _run_tool(name, args, monkeypatch):
    run_tool_script(name, args, monkeypatch)


def test_tools_test_evaluates_an_mmseg_checkpoint_as_it_is(tmp_path, monkeypatch):
    model = _randomised_twin()
    ours = tmp_path / 'ours.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ours)
    theirs = _mmseg_checkpoint(model, tmp_path / 'mmseg_upernet.pth')
    data = ensure_synthetic('seg', tmp_path / 'synthetic_seg', num_train=2, num_val=3, seed=0, size_range=(64, 100))
    options = [f'{key}={value}' for key, value in synthetic_data_options('seg', data).items()
               if key.startswith('test_dataloader')]
    options += ['test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False']
    metrics = []
    for checkpoint in (ours, theirs):
        out = tmp_path / f'{checkpoint.stem}.json'
        _run_tool('test.py', [str(TINY_CONFIG), str(checkpoint), '--work-dir', str(tmp_path / 'work'), '--out',
                              str(out), '--cfg-options', *options], monkeypatch)
        metrics.append(json.loads(out.read_text()))
    assert set(metrics[0]) == {'aAcc', 'mIoU', 'mAcc'} and metrics[0] == metrics[1]
