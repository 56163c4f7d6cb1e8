"""`benchmark backbone --reference`: mmseg's MAE and detectron2's ViT measured next to ours, on tiny sizes."""
import argparse
import os
import sys

import pytest

from mae_transfer.tools.benchmark import backbone, references

# A detectron2 source checkout (the folder holding detectron2/modeling/backbone/vit.py), where one exists
DETECTRON2_ROOT = os.environ.get('MAE_TRANSFER_DETECTRON2_ROOT')


def tiny_args(**overrides) -> argparse.Namespace:
    args = dict(arch='tiny', img_size=64, batch=1, window_size=2, global_attn_indexes=[1], out_indices=[1, 3],
                drop_path=0.1, rel_pos_impl='fold', settings=['vitdet-window', 'upernet'], cp=['off', 'on'],
                reference=['mmseg', 'detectron2'], detectron2_root=None, rounds=2)
    args.update(overrides)
    return argparse.Namespace(**args)


def test_references_follow_ours_with_cp_off_and_detectron2_needs_a_checkout(capsys):
    specs = backbone.measurement_specs(tiny_args())
    assert 'detectron2 unavailable' in capsys.readouterr().out
    order = [(s['setting'], s['options']['with_cp'], s['implementation']) for s in specs]
    one_round = [('vitdet-window', False, 'ours'), ('vitdet-window', True, 'ours'), ('upernet', False, 'ours'),
                 ('upernet', False, 'mmseg'), ('upernet', True, 'ours')]
    assert order == one_round * 2


def test_mmseg_reference_steps_on_the_same_input():
    spec = backbone.reference_spec(backbone.backbone_spec('upernet', False, tiny_args()), 'mmseg', tiny_args())
    result = backbone.measure_backbone(spec, iters=1, warmup=0, threads=0, profile=False)
    assert result['implementation'] == 'mmseg' and result['step_s'] > 0


    def params_besides_pos_embed(model):  # pos_embed: ours at the 224 pretraining grid, mmseg's at the input's
        return sum(p.numel() for name, p in model.named_parameters() if name != 'pos_embed')
    ours = backbone.build_backbone(backbone.backbone_spec('upernet', False, tiny_args()))
    # the same network (layer scale included); mmseg keeps a small unused rel-pos table, ours the unused final norm
    assert params_besides_pos_embed(backbone.build_backbone(spec)) == pytest.approx(
        params_besides_pos_embed(ours), rel=1e-3)


def test_ratios_are_ours_over_the_reference_per_round(capsys):
    def result(implementation, step_s, peak, before):
        return dict(implementation=implementation, setting='upernet', options=dict(with_cp=False), step_s=step_s,
                    peak_mem_mib=peak, before_step_mem_mib=before)
    backbone.print_reference_ratios([result('ours', 1.0, 300, 100), result('mmseg', 2.0, 600, 200),
                                     result('ours', 3.0, 300, 100), result('mmseg', 4.0, 500, 100)])
    line = capsys.readouterr().out.strip()
    assert line == ('ours / mmseg (upernet, 2 round(s), median [min, max]): time 0.75x [0.50, 0.75], '
                    'peak 0.60x [0.50, 0.60], step_mem 0.50x [0.50, 0.50]')


@pytest.mark.skipif(not DETECTRON2_ROOT, reason='set MAE_TRANSFER_DETECTRON2_ROOT to a detectron2 source checkout')
def test_detectron2_vit_loads_from_a_source_checkout_without_detectron2():
    args = tiny_args(detectron2_root=DETECTRON2_ROOT)
    spec = backbone.reference_spec(backbone.backbone_spec('vitdet-window', False, args), 'detectron2', args)
    result = backbone.measure_backbone(spec, iters=1, warmup=0, threads=0, profile=False)
    assert result['implementation'] == 'detectron2' and result['step_s'] > 0
    assert 'detectron2' not in sys.modules  # the stand-ins were only in place while the files loaded


def test_a_missing_checkout_is_reported_not_raised_as_a_crash(tmp_path):
    with pytest.raises(references.ReferenceUnavailable, match='no detectron2 source checkout'):
        references.load_detectron2_vit(str(tmp_path))
