"""Segmentation inference: whole-image and sliding-window prediction at the input size for odd, non-square images;
overlay pictures with a legend from the API and from tools/infer.py."""
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from mae_transfer.apis import inference, init_model
from mae_transfer.apis.segment import infer_images
from mae_transfer.datasets.synthetic.ade import CLASSES, PALETTE
from mae_transfer.visualization import draw_segmentation

from helpers.paths import REPO
from helpers.scripts import run_tool_script

TINY_CONFIG = REPO / 'configs' / 'seg' / 'upernet_vit-tiny-p16_1xb8-200i_synthetic-128x128.py'


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return init_model(TINY_CONFIG)  # random weights: shapes and plumbing, not quality


def _count_windows(model, monkeypatch):
    calls = []
    original = model.encode_decode

    def counting(inputs, batch_img_metas):
        calls.append(tuple(inputs.shape[-2:]))
        return original(inputs, batch_img_metas)

    monkeypatch.setattr(model, 'encode_decode', counting)
    return calls


# (H, W) of the input; the test pipeline resizes to fit (256, 128) keeping the ratio (short side 128 here),
# and the 128 x 128 window with stride 85 then needs this many windows.
# (100, 150) -> 128 x 192, (77, 45) -> 219 x 128, (131, 403) -> 83 x 256, (50, 50) -> 128 x 128.
ODD_SIZES = [((100, 150), 2), ((77, 45), 3), ((131, 403), 3), ((50, 50), 1)]


@pytest.mark.parametrize('mode', ['whole', 'slide'])
def test_prediction_has_the_input_size_for_odd_sizes(model, mode, monkeypatch):
    rng = np.random.default_rng(0)
    calls = _count_windows(model, monkeypatch)
    network_inputs = []
    for (height, width), windows in ODD_SIZES:
        image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)  # BGR, mmcv's convention
        calls.clear()
        label_map = inference(model, [image], mode=mode)[0]
        assert label_map.shape == (height, width) and label_map.dtype == np.int64
        assert label_map.min() >= 0 and label_map.max() < len(CLASSES)
        network_inputs += calls
        if mode == 'whole':
            assert len(calls) == 1
        else:
            assert len(calls) == windows, (height, width, calls)
            assert all(h <= 128 and w <= 128 for h, w in calls)
    assert any(h % 16 or w % 16 for h, w in network_inputs)  # the backbone pads, the head resizes back
    assert model.test_cfg['mode'] == 'slide'  # the call's mode does not stick


def test_slide_matches_whole_when_one_window_covers_the_image(model):
    image = np.random.default_rng(1).integers(0, 256, size=(96, 96, 3), dtype=np.uint8)  # resized to 128 x 128
    whole, slide = inference(model, [image, image], mode='whole')[0], inference(model, [image], mode='slide')[0]
    np.testing.assert_array_equal(whole, slide)


def test_draw_segmentation_blends_found_classes_and_lists_them():
    image = np.full((37, 53, 3), 200, dtype=np.uint8)
    label_map = np.zeros((37, 53), dtype=np.int64)
    label_map[:, 20:] = 3
    label_map[:5] = 255  # ignored: left as it is
    picture = np.asarray(draw_segmentation(image, label_map, CLASSES, PALETTE, alpha=0.5))
    assert picture.shape[0] >= 37 and picture.shape[1] > 53 + 40  # legend on the right
    overlay = picture[:37, :53].astype(int)
    np.testing.assert_array_equal(overlay[:5], image[:5])
    np.testing.assert_allclose(overlay[10, 0], (np.array(PALETTE[0]) + 200) / 2, atol=1)
    np.testing.assert_allclose(overlay[10, 40], (np.array(PALETTE[3]) + 200) / 2, atol=1)
    legend = picture[:, 53:]
    for label in (3, 0):  # swatches of the classes found
        assert (np.abs(legend.astype(int) - PALETTE[label]).sum(-1) == 0).sum() > 20
    for label in (1, 2, 4):  # and only those
        assert (np.abs(legend.astype(int) - PALETTE[label]).sum(-1) == 0).sum() == 0


@pytest.fixture(scope='module')
def checkpoint(model, tmp_path_factory):
    path = tmp_path_factory.mktemp('seg_ckpt') / 'tiny.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict(dataset_meta=model.dataset_meta)), path)
    return path


def _write_images(directory: Path):
    rng = np.random.default_rng(2)
    paths = []
    for height, width in [(90, 141), (203, 77)]:
        path = directory / f'img_{height}x{width}.jpg'
        Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_infer_images_writes_overlays_with_legends(checkpoint, tmp_path):
    paths = _write_images(tmp_path)
    written = infer_images(Config.fromfile(str(TINY_CONFIG)), str(checkpoint), paths, tmp_path / 'out',
                           mode='whole', score_thr=None)
    assert [path.name for path in written] == ['img_90x141.png', 'img_203x77.png']
    for source, out in zip(paths, written):
        original, picture = np.asarray(Image.open(source)), np.asarray(Image.open(out).convert('RGB'))
        height, width = original.shape[:2]
        assert picture.shape[0] >= height and picture.shape[1] > width
        assert not np.array_equal(picture[:height, :width], original)  # coloured
        assert (picture[:, width:] < 128).any()  # legend text / swatches on the white panel


def test_tools_infer_dispatches_to_segmentation(checkpoint, tmp_path, monkeypatch, capsys):
    paths = _write_images(tmp_path)
    run_tool_script('infer.py', [TINY_CONFIG, checkpoint, paths[1], '--out-dir', tmp_path / 'tool'], monkeypatch)
    out = tmp_path / 'tool' / 'img_203x77.png'
    assert out.is_file() and str(out) in capsys.readouterr().out
    assert Image.open(out).height >= 203
