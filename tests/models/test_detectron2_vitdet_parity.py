"""detectron2's released ViTDet Mask R-CNN (`model_final_*.pkl`) evaluates whole in our ViT-B config: the same
proposals and the same final boxes, scores, classes and masks as detectron2's own inference.

The reference is detectron2's Mask R-CNN inference written out from its published code (tests/helpers/
detectron2_vitdet.py, with detectron2's parameter names). It gets random weights (norms, rel-pos tables and every
head included), is saved the way detectron2 saves (a pickle of numpy arrays under 'model'), and that file is loaded
into our config as tools/test.py and infer load it (`load_weights(..., complete=True)`). Both run on the same
preprocessed real photo, at 640 x 640 to keep the test short (the rel-pos tables, sized for 1024, are resized
alike on both sides; the recipe's 1024 was measured once, see docs/detection.md).
"""
import pickle

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.config import Config

from helpers.detectron2_vitdet import MaskRCNN
from helpers.vitdet_inputs import photo_input, randomise, relative
from mae_transfer.checkpoint import load_weights
from mae_transfer.utils.configs import CONFIG_ROOT, build_model

CONFIG = CONFIG_ROOT / 'det' / 'mask-rcnn_vit-base-p16_16xb4-amp-lsj-184ki_coco-1024x1024.py'
SIZE = 640


def save_like_detectron2(model: torch.nn.Module, path) -> None:
    """detectron2's Checkpointer output as the model zoo publishes it (numpy arrays, pickled)."""
    weights = {name: tensor.numpy() for name, tensor in model.state_dict().items()}
    with open(path, 'wb') as handle:
        pickle.dump({'model': weights, '__author__': 'Detectron2 Model Zoo', 'matching_heuristics': True}, handle)


@torch.no_grad()
def run_ours(model, inputs: torch.Tensor, resized, original):
    """(pyramid, RPN proposals, final detections) of our mmdet detector on the same input."""
    size = inputs.shape[-2:]
    sample = DetDataSample(metainfo=dict(img_shape=resized, ori_shape=original, pad_shape=size,
                                         batch_input_shape=size,
                                         scale_factor=(resized[1] / original[1], resized[0] / original[0])))
    feats = model.extract_feat(inputs)
    proposals = model.rpn_head.predict(feats, [sample], rescale=False)
    detections = model.roi_head.predict(feats, proposals, [sample], rescale=True)
    return feats, proposals[0], detections[0]


@pytest.fixture(scope='module')
def released(tmp_path_factory):
    torch.manual_seed(0)
    reference = MaskRCNN('base').eval()
    randomise(reference, class_logits='cls_score.weight')
    path = tmp_path_factory.mktemp('detectron2_vitdet') / 'model_final_61ccd1.pkl'
    save_like_detectron2(reference, path)
    inputs, resized, original = photo_input(SIZE)
    return path, (inputs, resized, original), reference.inference(inputs, resized, original)


def test_our_config_computes_the_released_model(released):
    path, (inputs, resized, original), ref = released
    cfg = Config.fromfile(str(CONFIG))
    cfg.model.backbone.init_cfg = None
    model = build_model(cfg).eval()
    report = load_weights(model, str(path), strict=True, complete=True)  # tools/test.py's and infer's load
    assert report.meta.source_format == 'detectron2'
    assert report.renamed_keys['roi_head.bbox_head.shared_convs.1.ln.weight'] == 'roi_heads.box_head.conv2.norm.weight'
    assert report.renamed_keys['rpn_head.rpn_reg.weight'] == 'proposal_generator.rpn_head.anchor_deltas.weight'
    assert not report.dropped_keys, report.dropped_keys  # every tensor of the file is placed
    feats, proposals, detections = run_ours(model, inputs, resized, original)

    errors = [relative(ours, theirs) for ours, theirs in zip(feats, ref['features'])]
    assert len(feats) == 5 and max(errors) < 1e-4, errors

    top = 200  # the best proposals: same boxes and objectness (mmdet keeps sigmoid scores, detectron2 logits)
    assert len(proposals) == len(ref['proposals'])
    assert torch.allclose(proposals.scores[:top], ref['objectness_logits'][:top].sigmoid(), atol=1e-4)
    assert torch.allclose(proposals.bboxes[:top], ref['proposals'][:top], atol=0.02)

    assert len(ref['boxes']) >= 10, 'the random reference must detect something to compare'
    assert len(detections) == len(ref['boxes'])
    assert torch.equal(detections.labels, ref['classes'])
    assert torch.allclose(detections.scores, ref['scores'], atol=1e-4)
    assert torch.allclose(detections.bboxes, ref['boxes'], atol=0.02)
    disagree = (detections.masks != ref['masks']).float().mean().item()
    assert disagree < 1e-3, disagree
