"""Our ViT-B ADE20K backbone (as configs/seg/upernet_vit-base-p16_8xb2-160ki_ade20k-512x512.py builds it) gives the
same four feature maps as mmseg 1.2.2's `MAE` and `BEiT` backbones with the same weights, read from a file in
mmseg's own key scheme (`backbone.layers.N.*`, `gamma_1`, `q_bias`, `relative_position_bias_table`, ...).

Real size (ViT-B/16): the MAE recipe at its 512x512 input (1025 tokens), BEiT's key layout (q/v bias, gamma)
at 256x256 (257 tokens, the bias tables sized for that grid) to keep the suite fast; one forward per model,
no backward.
"""
import copy
import time

import pytest
import torch
from mmengine.config import Config

from helpers.paths import REPO
from mae_transfer.checkpoint import load_weights
from mae_transfer.models.backbones.mae_vit import MAEViT

mmseg_backbones = pytest.importorskip('mmseg.models.backbones')

BASE = REPO / 'configs' / 'seg' / 'upernet_vit-base-p16_8xb2-160ki_ade20k-512x512.py'
OUT_INDICES = (3, 5, 7, 11)


def _randomise(model: torch.nn.Module, seed: int) -> None:
    """Random values everywhere: weights, biases, norms, tokens, bias tables (std 0.5 so that they matter) and
    layer scales around 1."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith('relative_position_bias_table'):
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
            elif name.endswith(('gamma_1', 'gamma_2')):
                param.copy_(torch.rand(param.shape, generator=generator) + 0.5)
            elif name.endswith(('ln1.weight', 'ln2.weight')):
                param.copy_(1 + 0.1 * torch.randn(param.shape, generator=generator))
            elif param.ndim == 4:  # patch embedding conv
                param.copy_(torch.randn(param.shape, generator=generator) * param[0].numel() ** -0.5)
            else:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.02)


def _our_backbone(checkpoint_path, img_size: int) -> MAEViT:
    backbone = copy.deepcopy(Config.fromfile(str(BASE)).model.backbone)
    assert backbone.pop('type') == 'mae_transfer.MAEViT'
    assert backbone['img_size'] == 512
    backbone['img_size'] = img_size
    backbone['init_cfg'] = dict(type='Pretrained', checkpoint=str(checkpoint_path))
    model = MAEViT(**backbone)
    model.init_weights()
    return model.eval()


def _relative_errors(ours, theirs, grid: int):
    assert len(ours) == len(theirs) == 4
    errors = []
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape == (1, 768, grid, grid)
        errors.append(((a - b).norm() / b.norm()).item())
    return errors


@pytest.mark.parametrize('kind, img_size', [('MAE', 512), ('BEiT', 256)])
def test_vit_b_seg_backbone_matches_mmseg(kind, img_size, tmp_path):
    torch.manual_seed(0)
    options = dict(img_size=img_size, patch_size=16, embed_dims=768, num_layers=12, num_heads=12, mlp_ratio=4,
                   out_indices=list(OUT_INDICES), drop_path_rate=0.1)
    if kind == 'MAE':  # mmseg 1.2.2 configs/mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py
        reference = mmseg_backbones.MAE(init_values=1.0, **options)
    else:
        reference = mmseg_backbones.BEiT(init_values=0.1, qv_bias=True, **options)
    _randomise(reference, seed=1)
    reference.eval()
    state = {f'backbone.{k}': v for k, v in reference.state_dict().items()}
    state['decode_head.conv_seg.weight'] = torch.zeros(150, 768, 1, 1)  # a segmentor's head beside it
    path = tmp_path / f'mmseg_{kind.lower()}_upernet.pth'
    torch.save({'state_dict': state, 'meta': {}}, path)

    ours = _our_backbone(path, img_size)
    report = load_weights(ours, str(path))
    assert report.meta.source_format == 'mmseg_beit'
    assert report.ok, (report.missing_keys, report.unexpected_keys)
    assert report.expected_missing_keys == ['norm.weight', 'norm.bias']  # mmseg final_norm=False; ours unused
    assert report.dropped_keys['heads'] == ['decode_head.conv_seg.weight']
    assert len(report.dropped_keys['outside the encoder']) == 12  # relative_position_index buffers, rebuilt

    image = torch.randn(1, 3, img_size, img_size, generator=torch.Generator().manual_seed(2))
    start = time.perf_counter()
    with torch.no_grad():
        theirs = reference(image)
        mine = ours(image)
    elapsed = time.perf_counter() - start
    errors = _relative_errors(mine, theirs, img_size // 16)
    print(f'{kind}: relative errors {errors} ({elapsed:.1f} s for both forwards)')
    assert max(errors) < 1e-4, errors
