"""ONNX export of every task's tiny twin: the check against PyTorch, the file's metadata, and the same predictions
through each task's own inference when onnxruntime runs the graph (random weights: plumbing, not quality)."""
import json

import numpy as np
import onnx
import pytest
import torch

from mae_transfer.apis import init_model, task_module
from mae_transfer.apis.media import read_image
from mae_transfer.export import attach_onnxruntime, export_onnx, task_graph
from mae_transfer.tools.export import main as export_main
from mae_transfer.utils.configs import CONFIG_ROOT

from helpers.paths import TEST_DATA

TINY = {
    'cls': 'cls/ft_vit-tiny-p16_1xb32-600i_synthetic-64x64.py',
    'seg': 'seg/upernet_vit-tiny-p16_1xb8-200i_synthetic-128x128.py',
    'pose': 'pose/heatmap_vit-tiny-p16_1xb32-300i_synthetic-128x96.py',
    'pretrain': 'pretrain/mae_vit-tiny-p16_1xb32-coslr-50e_synthetic-128x128.py',
    'det': 'det/mask-rcnn_vit-tiny-p16_1xb4-lsj-600i_synthetic-128x128.py',
}
OUTPUTS = {'cls': ('logits',), 'seg': ('logits',), 'pose': ('heatmaps',), 'pretrain': ('features',),
           'det': ('p2', 'p3', 'p4', 'p5', 'p6')}
IMAGE = TEST_DATA / 'coco_sample_pose' / 'val2017' / '000000000785.jpg'


def _same_predictions(task: str, pytorch: dict, runtime: dict) -> None:
    if task == 'cls':
        assert [t['class'] for t in pytorch['topk']] == [t['class'] for t in runtime['topk']]
        np.testing.assert_allclose([t['score'] for t in pytorch['topk']], [t['score'] for t in runtime['topk']],
                                   atol=1e-4)
    elif task == 'seg':  # class shares of the pixels (an argmax tie may flip a pixel)
        shares = [{s['class']: s['share'] for s in record['segments']} for record in (pytorch, runtime)]
        for name in set(shares[0]) | set(shares[1]):
            assert abs(shares[0].get(name, 0) - shares[1].get(name, 0)) <= 2e-3, (name, shares)
    elif task == 'pose':  # random heatmaps are nearly flat: a rare argmax tie may move one keypoint
        a, b = (np.array([p['keypoints'] for p in record['persons']]) for record in (pytorch, runtime))  # [P, K, 3]
        assert a.shape == b.shape
        assert (np.abs(a[..., :2] - b[..., :2]).max(-1) < 1e-2).mean() >= 0.9
        np.testing.assert_allclose(a[..., 2], b[..., 2], rtol=1e-3, atol=1e-9)
    else:  # det: the same number of instances with the same scores
        scores = [sorted(i['score'] for i in record['instances']) for record in (pytorch, runtime)]
        np.testing.assert_allclose(scores[0], scores[1], atol=1e-3)


# det, pose and cls exports are also evaluated through tools/test.py in each task's tiny-twin test
@pytest.mark.parametrize('task', ['seg', 'pose', 'pretrain'])
def test_export_matches_pytorch_and_runs_in_the_task_inference(task, tmp_path):
    torch.manual_seed(0)
    model = init_model(CONFIG_ROOT / TINY[task])
    report = export_onnx(model, tmp_path / f'{task}.onnx')
    assert report.passed, report.table()
    assert [d.name for d in report.differences] == list(OUTPUTS[task])
    assert all(d.shape[0] == 3 and d.relative < 1e-4 for d in report.differences), report.table()
    # exporters restore the traced module's mode: the model must still be in eval mode, untouched
    assert not any(module.training for module in model.modules())
    metadata = {p.key: p.value for p in onnx.load(str(report.path), load_external_data=False).metadata_props}
    assert metadata['mae_transfer.task'] == task
    assert json.loads(metadata['mae_transfer.input_size']) == list(task_graph(model).input_size)
    assert len(json.loads(metadata['mae_transfer.input'])['mean']) == 3

    image = read_image(IMAGE)
    if task == 'pretrain':
        with pytest.raises(ValueError, match='reconstructions need'):
            attach_onnxruntime(model, report.path)
        return
    module = task_module(model.cfg)
    pytorch = module.to_json(model, _predict(module, model, image))
    runtime = attach_onnxruntime(model, report.path)
    onnx_result = module.to_json(model, _predict(module, model, image))
    assert runtime.calls > 0
    _same_predictions(task, pytorch, onnx_result)


def _predict(module, model, image):
    if hasattr(module, 'estimate'):  # pose: two person boxes, flip test on
        return module.estimate(model, image, np.array([[60, 20, 180, 300], [300, 40, 120, 260]], np.float32))
    return module.inference(model, [image])[0]


def test_graph_refuses_another_input_size_and_another_task(tmp_path):
    cls_model = init_model(CONFIG_ROOT / TINY['cls'])
    report = export_onnx(cls_model, tmp_path / 'cls.onnx')
    runtime = attach_onnxruntime(cls_model, report.path)
    with pytest.raises(ValueError, match='takes inputs of 64 x 64 .* got 32 x 48: export at this size'):
        runtime(torch.zeros(1, 3, 32, 48))
    pose_model = init_model(CONFIG_ROOT / TINY['pose'])
    with pytest.raises(ValueError, match='exported from a cls model; this config is a pose model'):
        attach_onnxruntime(pose_model, report.path)


def test_dynamo_exporter_gives_the_same_graph(tmp_path):
    model = init_model(CONFIG_ROOT / TINY['cls'])
    report = export_onnx(model, tmp_path / 'cls.onnx', exporter='dynamo', opset=18)
    assert report.passed and report.exporter == 'dynamo', report.table()
    with pytest.raises(ValueError, match='dynamo exporter writes opsets 18 to'):
        export_onnx(model, tmp_path / 'x.onnx', exporter='dynamo', opset=17)


def test_export_command_prints_the_check_and_fails_beyond_the_tolerance(tmp_path, capsys):
    config = str(CONFIG_ROOT / TINY['seg'])
    checkpoint = tmp_path / 'seg.pth'
    torch.save({'state_dict': init_model(config).state_dict()}, checkpoint)
    assert export_main([config, str(checkpoint), '--out', str(tmp_path / 'seg.onnx')]) == 0
    out = capsys.readouterr().out
    assert 'onnxruntime vs PyTorch' in out and 'logits' in out and 'check passed' in out
    # a tolerance of zero cannot be met by two floating-point implementations: status 1, the output named
    assert export_main([config, str(checkpoint), '--out', str(tmp_path / 'strict.onnx'), '--rtol', '0',
                        '--atol', '0']) == 1
    out = capsys.readouterr().out
    assert 'TOO LARGE' in out and 'check FAILED' in out
    with pytest.raises(SystemExit, match='checkpoint not found'):
        export_main([config, str(tmp_path / 'missing.pth')])


def test_full_recipes_export_at_their_test_input_size():
    """ViTDet pads test images to 1024 x 1024 (the backbone's own img_size is the 224 of pretraining); UperNet's
    graph is one 512 x 512 window."""
    from types import SimpleNamespace

    from mae_transfer.export.graphs import _det_input_size
    from mae_transfer.utils.configs import load_config, sliding_window

    det = load_config('det/mask-rcnn_vit-base-p16_16xb4-amp-lsj-184ki_coco-1024x1024.py')
    assert det.model.backbone.img_size == 224 and _det_input_size(SimpleNamespace(cfg=det)) == (1024, 1024)
    assert sliding_window(load_config('seg/upernet_vit-base-p16_8xb2-160ki_ade20k-512x512.py'))[0] == (512, 512)


def test_pretraining_encoder_exports_at_another_input_size(tmp_path):
    model = init_model(CONFIG_ROOT / TINY['pretrain'])  # pretrained at 128 x 128
    report = export_onnx(model, tmp_path / 'mae.onnx', input_size=(96, 160))
    assert report.passed, report.table()
    (features,) = report.differences
    assert features.shape[:2] == (3, 1 + 6 * 10)  # cls token + a 6 x 10 patch grid
    assert model.mae.patch_embed.strict_img_size  # the model itself is left as it was
    with pytest.raises(AssertionError, match="doesn't match model"):
        model.mae.forward_features(torch.zeros(1, 3, 96, 160))


def test_the_check_tolerance_scales_with_the_output():
    from mae_transfer.export import DEFAULT_ATOL, DEFAULT_RTOL, OutputDifference

    # random ViT-B pose heatmaps peak at 5e-5: an absolute 1e-5 would be 20 % of them
    heatmaps = OutputDifference('heatmaps', (3, 17, 64, 48), max_abs=1e-5, max_reference=5e-5,
                                reference_range=5e-5)
    assert not heatmaps.passes(DEFAULT_RTOL, DEFAULT_ATOL)
    assert heatmaps.tolerance(DEFAULT_RTOL, DEFAULT_ATOL) == pytest.approx(1e-5 * 5e-5 + 1e-3 * 5e-5)
    assert OutputDifference('heatmaps', (1,), 1e-9, 5e-5, 5e-5).passes(DEFAULT_RTOL, DEFAULT_ATOL)
    logits = OutputDifference('logits', (3, 8), max_abs=2e-4, max_reference=0.5, reference_range=20.0)
    assert logits.passes(rtol=0, atol=1e-5)  # 1e-5 x range 20
    constant = OutputDifference('x', (1,), max_abs=1e-6, max_reference=0.0, reference_range=0.0)
    assert constant.passes(rtol=0, atol=1e-5) and not constant.passes(rtol=0, atol=1e-7)  # range 0: absolute


def test_a_graph_of_another_size_is_a_one_line_user_error(tmp_path, capsys):
    from mae_transfer.export import GraphMismatchError
    from mae_transfer.utils.user_errors import UserError, run_command

    model = init_model(CONFIG_ROOT / TINY['cls'])
    runtime = attach_onnxruntime(model, export_onnx(model, tmp_path / 'cls.onnx').path)
    with pytest.raises(GraphMismatchError) as error:
        runtime(torch.zeros(1, 3, 96, 96))
    assert isinstance(error.value, UserError) and isinstance(error.value, ValueError)
    with pytest.raises(SystemExit) as exit_:
        run_command(lambda argv: runtime(torch.zeros(1, 3, 96, 96)), 'mae-transfer infer', [])
    err = capsys.readouterr().err
    assert exit_.value.code != 0 and 'Traceback' not in err and len(err.strip().splitlines()) == 1
    assert err.startswith('mae-transfer infer: error: cls.onnx takes inputs of 64 x 64') and '--input-size 96 96' in err
