"""Pose heads and the TopdownPoseEstimator: shapes, loss, flip test and the mapping back to image pixels."""
import numpy as np
import pytest
import torch
from mmengine.structures import BaseDataElement

from mae_transfer.codecs import COCO_FLIP_INDICES, apply_affine, flip_keypoints, warp_matrix
from mae_transfer.models.heads import HeatmapHead, SimpleHeatmapHead
from mae_transfer.models.pose import TopdownPoseEstimator
from mae_transfer.registry import TASK_UTILS
from mae_transfer.utils.builder import build_module

INPUT, HEATMAP = (96, 128), (24, 32)
CODEC = dict(type='UDPHeatmap', input_size=INPUT, heatmap_size=HEATMAP, sigma=2)


def tiny_estimator(**test_cfg):
    return TopdownPoseEstimator(
        backbone=dict(type='mae_transfer.MAEViT', arch='tiny', img_size=128, use_cls_token=False),
        head=dict(type='HeatmapHead', deconv_out_channels=(32, 32)), codec=CODEC, test_cfg=test_cfg).eval()


@pytest.mark.parametrize('head', [HeatmapHead(64, 17, (32, 32), (4, 4)), HeatmapHead(64, 17, (16, 16), (3, 2)),
                                  SimpleHeatmapHead(64, 17)], ids=['classic', 'classic-k3k2', 'simple'])
def test_heads_upsample_four_times(head):
    assert head(torch.randn(2, 64, 8, 6)).shape == (2, 17, 32, 24)


def test_loss_uses_target_weights_and_backpropagates():
    model = tiny_estimator().train()
    inputs = torch.randn(2, 3, INPUT[1], INPUT[0])
    samples = []
    for weight in (1.0, 0.0):
        sample = BaseDataElement()
        sample.heatmaps = torch.rand(17, HEATMAP[1], HEATMAP[0])
        sample.keypoint_weights = torch.full((17, ), weight)
        samples.append(sample)
    losses = model(inputs, samples, mode='loss')
    assert set(losses) == {'loss_kpt', 'acc_pose'} and losses['loss_kpt'] > 0
    losses['loss_kpt'].backward()
    assert model.backbone.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    # the zero-weight sample contributes nothing: changing its target leaves the loss unchanged
    samples[1].heatmaps = torch.rand(17, HEATMAP[1], HEATMAP[0])
    with torch.no_grad():
        again = model(inputs, samples, mode='loss')['loss_kpt']
    assert float(again) == pytest.approx(losses['loss_kpt'].item(), rel=1e-5)


@pytest.mark.parametrize('flip_test', [False, True])
def test_predict_decodes_to_image_pixels(flip_test, monkeypatch):
    """A fake network that "sees" known keypoints (mirrored when its input is mirrored) is decoded exactly."""
    model = tiny_estimator(flip_test=flip_test)
    codec = build_module(TASK_UTILS, CODEC)
    rng = np.random.default_rng(0)
    center, scale = np.array([150.0, 120.0], np.float32), np.array([90.0, 120.0], np.float32)
    image_keypoints = (center + rng.uniform(-0.2, 0.2, (17, 2)) * scale).astype(np.float32)
    crop_keypoints = apply_affine(image_keypoints, warp_matrix(center, scale, 0.0, INPUT, use_udp=True))

    def fake_heatmaps(x):
        maps = []
        for image in x:  # a marker column tells mirrored inputs apart
            kps = crop_keypoints
            if image[0, 0, 0] < 0:
                kps, _ = flip_keypoints(crop_keypoints, np.ones(17), INPUT[0], COCO_FLIP_INDICES)
            maps.append(torch.from_numpy(codec.encode(kps)[0]))
        return torch.stack(maps)

    monkeypatch.setattr(model, 'forward_heatmaps', fake_heatmaps)
    inputs = torch.zeros(1, 3, INPUT[1], INPUT[0])
    inputs[..., 0] = 1.0
    inputs[..., -1] = -1.0
    sample = BaseDataElement(metainfo=dict(input_center=center, input_scale=scale,
                                           input_size=np.array(INPUT, np.float32), flip_indices=COCO_FLIP_INDICES))
    (out, ) = model(inputs, [sample], mode='predict')
    np.testing.assert_allclose(out.pred_keypoints, image_keypoints, atol=0.25)  # image px; 1 heatmap px = 3.8
    assert out.keypoint_scores.shape == (17, ) and np.all(out.keypoint_scores > 0.5)


def test_real_network_predict_runs_with_flip_test():
    model = tiny_estimator(flip_test=True)
    sample = BaseDataElement(metainfo=dict(input_center=np.array([50.0, 60.0]), input_scale=np.array([75.0, 100.0]),
                                           input_size=np.array(INPUT, np.float32)))
    with torch.no_grad():
        (out, ) = model(torch.randn(1, 3, INPUT[1], INPUT[0]), [sample], mode='predict')
    assert out.pred_keypoints.shape == (17, 2) and np.all(np.isfinite(out.pred_keypoints))
    assert model(torch.randn(2, 3, INPUT[1], INPUT[0]), mode='tensor').shape == (2, 17, HEATMAP[1], HEATMAP[0])


def test_backbone_must_be_maevit():
    with pytest.raises(ValueError, match='MAEViT'):
        TopdownPoseEstimator(backbone=dict(type='ResNet'), head=dict(type='HeatmapHead'), codec=CODEC)
