"""detectron2's Mask R-CNN heads (the ViTDet configs' `StandardRPNHead`, `FastRCNNConvFCHead`,
`FastRCNNOutputLayers` and `MaskRCNNConvUpsampleHead`, detectron2 commit 02b5c4e2) in the names of mmdet's modules
in our det configs (`RPNHead(num_convs=2)`, `Shared4Conv1FCBBoxHead`, `FCNMaskHead`, norms `mae_transfer.LayerNorm2d`,
which mmcv's ConvModule names `ln`).

Every tensor keeps its values and shape: the two libraries lay the heads out the same way.
- RPN: per location the A = 3 anchors are sizes x aspect ratios (one size per level; ratios 0.5, 1, 2 as h / w,
  anchors centred on the cell corner, offset 0) in both; objectness [A, C, 1, 1] is one logit per anchor (mmdet
  sigmoid, `cls_out_channels` 1) and deltas [A * 4, C, 1, 1] are anchor-major (channel a * 4 + k, k = dx, dy, dw,
  dh), as mmdet's `permute(1, 2, 0).reshape(-1, 4)` reads them; weights (1, 1, 1, 1) = mmdet's RPN stds.
- box predictor: `cls_score` [K + 1, 1024] with the background last (index K) in both, classes in the order of
  the COCO category ids (detectron2's contiguous ids = mmdet's CocoDataset order); `bbox_pred` [4 K, 1024],
  class-major (k * 4 + dx, dy, dw, dh), class-specific; detectron2 divides by the weights (10, 10, 5, 5), mmdet
  multiplies by target_stds (0.1, 0.1, 0.2, 0.2) with zero means: the same boxes.
- box head: detectron2 flattens the 256 x 7 x 7 RoI map [N, C * H * W] before fc1 as mmdet does before shared_fcs.0.
- mask head: mask_fcn1..4 (conv + LN + ReLU, no bias), deconv + ReLU, predictor 1x1 [K, 256, 1, 1] per class.
"""
import re
from typing import Optional

# (detectron2 key prefix with at most one layer number, our prefix with `{}` for it, detectron2's first number);
# the first pattern that matches renames the key (norms before their convs)
DETECTRON2_HEAD_RENAMES = tuple((re.compile(pattern), ours, first) for pattern, ours, first in (
    (r'^proposal_generator\.rpn_head\.conv\.conv(\d+)\.', 'rpn_head.rpn_conv.{}.conv.', 0),  # conv_dims [-1, -1]
    (r'^proposal_generator\.rpn_head\.conv\.', 'rpn_head.rpn_conv.', 0),  # one conv: a bare Conv2d in both
    (r'^proposal_generator\.rpn_head\.objectness_logits\.', 'rpn_head.rpn_cls.', 0),
    (r'^proposal_generator\.rpn_head\.anchor_deltas\.', 'rpn_head.rpn_reg.', 0),
    (r'^roi_heads\.box_head\.conv(\d+)\.norm\.', 'roi_head.bbox_head.shared_convs.{}.ln.', 1),
    (r'^roi_heads\.box_head\.conv(\d+)\.', 'roi_head.bbox_head.shared_convs.{}.conv.', 1),
    (r'^roi_heads\.box_head\.fc(\d+)\.', 'roi_head.bbox_head.shared_fcs.{}.', 1),
    (r'^roi_heads\.box_predictor\.cls_score\.', 'roi_head.bbox_head.fc_cls.', 0),
    (r'^roi_heads\.box_predictor\.bbox_pred\.', 'roi_head.bbox_head.fc_reg.', 0),
    (r'^roi_heads\.mask_head\.mask_fcn(\d+)\.norm\.', 'roi_head.mask_head.convs.{}.ln.', 1),
    (r'^roi_heads\.mask_head\.mask_fcn(\d+)\.', 'roi_head.mask_head.convs.{}.conv.', 1),
    (r'^roi_heads\.mask_head\.deconv\.', 'roi_head.mask_head.upsample.', 0),
    (r'^roi_heads\.mask_head\.predictor\.', 'roi_head.mask_head.conv_logits.', 0),
))


def rename_detectron2_head(key: str) -> Optional[str]:
    """Our name of a detectron2 Mask R-CNN head key, or None for a key these heads do not have (a cascade's
    `roi_heads.box_head.0.*`, a keypoint head), which stays among the dropped keys.

    Args:
        key: a detectron2 key, e.g. 'roi_heads.box_head.conv2.norm.weight'
            (-> 'roi_head.bbox_head.shared_convs.1.ln.weight').
    """
    for pattern, ours, first in DETECTRON2_HEAD_RENAMES:
        match = pattern.match(key)
        if match:
            layer = [int(number) - first for number in match.groups()]  # detectron2 counts conv1.. / mask_fcn1..
            return ours.format(*layer) + key[match.end():]
    return None
