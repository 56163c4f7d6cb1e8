"""detectron2's ViTDet Mask R-CNN at inference (facebookresearch/detectron2 commit 02b5c4e2, the model of
`configs/common/models/mask_rcnn_vitdet.py` over `mask_rcnn_fpn.py`) rewritten as a test reference, with its
parameter names, so that `state_dict()` is what a released `model_final_*.pkl` holds under 'model'.

Read from: `modeling/backbone/vit.py` (ViT: the same computation as the port in helpers/mmdet_vitdet.py, reused
with detectron2's LayerNorm eps 1e-6; SimpleFeaturePyramid), `layers/batch_norm.py` (channel LayerNorm),
`layers/wrappers.py` (Conv2d with `norm` / `activation`), `modeling/anchor_generator.py` (DefaultAnchorGenerator),
`modeling/proposal_generator/rpn.py` (StandardRPNHead, RPN.forward / predict_proposals) and `proposal_utils.py`
(find_top_rpn_proposals), `modeling/box_regression.py` (Box2BoxTransform.apply_deltas, scale clamp
log(1000 / 16)), `modeling/poolers.py` (ROIPooler: assign_boxes_to_levels, ROIAlignV2), `modeling/roi_heads/`
`box_head.py` (FastRCNNConvFCHead), `fast_rcnn.py` (FastRCNNOutputLayers.inference,
fast_rcnn_inference_single_image), `mask_head.py` (MaskRCNNConvUpsampleHead, mask_rcnn_inference),
`modeling/postprocessing.py` (detector_postprocess) and `layers/mask_ops.py` (paste_masks_in_image on CPU: one
box at a time, skip_empty). detectron2's compiled ops are replaced by torchvision's: ROIAlign(aligned=True) ->
`torchvision.ops.roi_align(aligned=True)`, batched_nms -> `torchvision.ops.batched_nms` (what detectron2 calls).

Test-time settings (detectron2's config values): RPN pre_nms_topk 1000 per level, post_nms_topk 1000 per image,
nms 0.7, min_box_size 0; box score > 0.05, class-wise NMS 0.5, 100 detections; mask threshold 0.5. The input is
what GeneralizedRCNN.preprocess_image gives: (RGB - mean) / std, zero-padded (square_pad 1024 in the recipe).
"""
import math
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import batched_nms, roi_align

from helpers.mmdet_vitdet import ViT

SCALE_CLAMP = math.log(1000.0 / 16)  # box_regression._DEFAULT_SCALE_CLAMP
STRIDES = (4, 8, 16, 32, 64)  # p2 ... p6
ANCHOR_SIZES, ASPECT_RATIOS = (32, 64, 128, 256, 512), (0.5, 1.0, 2.0)
ARCHS = {'base': dict(embed_dim=768, depth=12, num_heads=12, window_block_indexes=(0, 1, 3, 4, 6, 7, 9, 10)),
         'large': dict(embed_dim=1024, depth=24, num_heads=16,
                       window_block_indexes=tuple(i for i in range(24) if i not in (5, 11, 17, 23)))}


class LayerNorm(nn.Module):
    """detectron2.layers.LayerNorm: over the channels of [N, C, H, W]."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight, self.bias, self.eps = nn.Parameter(torch.ones(channels)), nn.Parameter(torch.zeros(channels)), eps

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(1, keepdim=True)  # [N, 1, H, W]
        var = (x - mean).pow(2).mean(1, keepdim=True)
        return self.weight[:, None, None] * ((x - mean) / torch.sqrt(var + self.eps)) + self.bias[:, None, None]


class Conv2d(nn.Conv2d):
    """detectron2.layers.Conv2d: conv, then its `norm` (a child, so its keys are `<conv>.norm.*`), then activation."""

    def __init__(self, *args, norm: nn.Module = None, relu: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.norm, self.relu = norm, relu

    def forward(self, x: Tensor) -> Tensor:
        x = super().forward(x)
        x = self.norm(x) if self.norm is not None else x
        return F.relu(x) if self.relu else x


def conv_ln_relu(cin: int, cout: int) -> Conv2d:
    """The RoI heads' 3x3 convs with conv_norm='LN' (bias=not conv_norm) and ReLU."""
    return Conv2d(cin, cout, 3, padding=1, bias=False, norm=LayerNorm(cout), relu=True)


class SimpleFeaturePyramid(nn.Module):
    """`SimpleFeaturePyramid` (norm 'LN', LastLevelMaxPool): `simfp_{2..5}` from the stride-16 map, + p6."""

    def __init__(self, net: nn.Module, dim: int, out: int = 256) -> None:
        super().__init__()
        self.net = net
        stems = {2: [nn.ConvTranspose2d(dim, dim // 2, 2, 2), LayerNorm(dim // 2), nn.GELU(),
                     nn.ConvTranspose2d(dim // 2, dim // 4, 2, 2)],
                 3: [nn.ConvTranspose2d(dim, dim // 2, 2, 2)], 4: [], 5: [nn.MaxPool2d(2, 2)]}
        for stage, layers in stems.items():
            cin = {2: dim // 4, 3: dim // 2}.get(stage, dim)
            self.add_module(f'simfp_{stage}', nn.Sequential(
                *layers, Conv2d(cin, out, 1, bias=False, norm=LayerNorm(out)),
                Conv2d(out, out, 3, padding=1, bias=False, norm=LayerNorm(out))))

    def forward(self, x: Tensor) -> List[Tensor]:
        x = self.net(x)  # [N, D, H/16, W/16]
        maps = [getattr(self, f'simfp_{stage}')(x) for stage in (2, 3, 4, 5)]
        return maps + [F.max_pool2d(maps[-1], kernel_size=1, stride=2)]  # p2 ... p6


def apply_deltas(deltas: Tensor, boxes: Tensor, weights: Sequence[float]) -> Tensor:
    """Box2BoxTransform.apply_deltas: deltas [R, k * 4], boxes [R, 4] -> [R, k * 4]."""
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    ctr_x, ctr_y = boxes[:, 0] + 0.5 * widths, boxes[:, 1] + 0.5 * heights
    wx, wy, ww, wh = weights
    dx, dy = deltas[:, 0::4] / wx, deltas[:, 1::4] / wy
    dw, dh = (deltas[:, 2::4] / ww).clamp(max=SCALE_CLAMP), (deltas[:, 3::4] / wh).clamp(max=SCALE_CLAMP)
    cx, cy = dx * widths[:, None] + ctr_x[:, None], dy * heights[:, None] + ctr_y[:, None]
    w, h = torch.exp(dw) * widths[:, None], torch.exp(dh) * heights[:, None]
    return torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), dim=-1).reshape(deltas.shape)


def clip(boxes: Tensor, size: Tuple[int, int]) -> Tensor:
    """Boxes.clip: x to [0, w], y to [0, h]."""
    h, w = size
    return torch.stack((boxes[:, 0].clamp(0, w), boxes[:, 1].clamp(0, h), boxes[:, 2].clamp(0, w),
                        boxes[:, 3].clamp(0, h)), dim=-1)


def nonempty(boxes: Tensor, threshold: float = 0.0) -> Tensor:
    return ((boxes[:, 2] - boxes[:, 0]) > threshold) & ((boxes[:, 3] - boxes[:, 1]) > threshold)


def grid_anchors(sizes: Sequence[Tuple[int, int]]) -> List[Tensor]:
    """DefaultAnchorGenerator (one size per level, ratios h / w, offset 0): per level [H * W * A, 4],
    location-major (row, column), then the cell's anchors."""
    anchors = []
    for (height, width), stride, size in zip(sizes, STRIDES, ANCHOR_SIZES):
        cell = []
        for ratio in ASPECT_RATIOS:
            w = math.sqrt(size ** 2.0 / ratio)
            h = ratio * w
            cell.append([-w / 2.0, -h / 2.0, w / 2.0, h / 2.0])
        shift_y, shift_x = torch.meshgrid(torch.arange(0., height * stride, stride),
                                          torch.arange(0., width * stride, stride), indexing='ij')
        shifts = torch.stack((shift_x.reshape(-1), shift_y.reshape(-1)) * 2, dim=1)  # [H * W, 4]
        anchors.append((shifts.view(-1, 1, 4) + torch.tensor(cell).view(1, -1, 4)).reshape(-1, 4))
    return anchors


class StandardRPNHead(nn.Module):
    """conv_dims [-1, -1]: `conv.conv0`, `conv.conv1` (3x3 + ReLU), `objectness_logits`, `anchor_deltas`."""

    def __init__(self, channels: int = 256, num_anchors: int = 3) -> None:
        super().__init__()
        self.conv = nn.Sequential()
        for k in range(2):
            self.conv.add_module(f'conv{k}', Conv2d(channels, channels, 3, padding=1, relu=True))
        self.objectness_logits = nn.Conv2d(channels, num_anchors, 1)
        self.anchor_deltas = nn.Conv2d(channels, num_anchors * 4, 1)


class RPN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rpn_head = StandardRPNHead()

    def forward(self, features: List[Tensor], image_size: Tuple[int, int], pre_nms_topk: int = 1000,
                post_nms_topk: int = 1000, nms_thresh: float = 0.7) -> Tuple[Tensor, Tensor]:
        """One image's proposals: (boxes [P, 4], objectness logits [P]), best first."""
        head = self.rpn_head
        anchors = grid_anchors([tuple(f.shape[-2:]) for f in features])
        boxes, logits, levels = [], [], []
        for level, (x, anchors_i) in enumerate(zip(features, anchors)):
            t = head.conv(x)
            n, _, h, w = x.shape
            scores = head.objectness_logits(t).permute(0, 2, 3, 1).flatten(1)[0]  # [N, A, H, W] -> [H * W * A]
            deltas = head.anchor_deltas(t).view(n, -1, 4, h, w).permute(0, 3, 4, 1, 2).flatten(1, -2)[0]  # [HWA, 4]
            proposals = apply_deltas(deltas, anchors_i, (1.0, 1.0, 1.0, 1.0))  # [H * W * A, 4]
            top, index = scores.topk(min(pre_nms_topk, scores.numel()))  # per level, on the logits
            boxes.append(proposals[index])
            logits.append(top)
            levels.append(torch.full((len(index), ), level))
        boxes, logits, levels = torch.cat(boxes), torch.cat(logits), torch.cat(levels)
        boxes = clip(boxes, image_size)
        keep = nonempty(boxes)  # min_box_size 0
        boxes, logits, levels = boxes[keep], logits[keep], levels[keep]
        keep = batched_nms(boxes, logits, levels, nms_thresh)[:post_nms_topk]  # sorted by logit
        return boxes[keep], logits[keep]


def pool(features: List[Tensor], boxes: Tensor, output_size: int) -> Tensor:
    """ROIPooler(ROIAlignV2, sampling_ratio 0) over p2 ... p5 for one image: boxes [R, 4] -> [R, C, S, S]."""
    sizes = torch.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    levels = torch.floor(4 + torch.log2(sizes / 224 + 1e-8)).clamp(2, 5).long() - 2  # canonical level 4 at 224
    rois = torch.cat([torch.zeros(len(boxes), 1), boxes], dim=1)  # [R, 5], batch index 0
    out = features[0].new_zeros(len(boxes), features[0].shape[1], output_size, output_size)
    for level, x in enumerate(features[:4]):
        index = torch.nonzero(levels == level).squeeze(1)
        out[index] = roi_align(x, rois[index], output_size, spatial_scale=1.0 / STRIDES[level], sampling_ratio=0,
                               aligned=True)
    return out


def paste_masks(masks: Tensor, boxes: Tensor, size: Tuple[int, int], threshold: float = 0.5) -> Tensor:
    """paste_masks_in_image on CPU: masks [N, M, M] (probabilities), boxes [N, 4] -> [N, H, W] bool."""
    img_h, img_w = size
    out = torch.zeros(len(masks), img_h, img_w, dtype=torch.bool)
    for i in range(len(masks)):  # `_do_paste_mask` with skip_empty, one box per chunk
        box = boxes[i:i + 1]
        x0_int, y0_int = torch.clamp(box.min(dim=0).values.floor()[:2] - 1, min=0).to(dtype=torch.int32)
        x1_int = torch.clamp(box[:, 2].max().ceil() + 1, max=img_w).to(dtype=torch.int32)
        y1_int = torch.clamp(box[:, 3].max().ceil() + 1, max=img_h).to(dtype=torch.int32)
        x0, y0, x1, y1 = torch.split(box, 1, dim=1)  # each [1, 1]
        img_y = (torch.arange(y0_int, y1_int, dtype=torch.float32) + 0.5 - y0) / (y1 - y0) * 2 - 1  # [1, h]
        img_x = (torch.arange(x0_int, x1_int, dtype=torch.float32) + 0.5 - x0) / (x1 - x0) * 2 - 1  # [1, w]
        gx = img_x[:, None, :].expand(1, img_y.size(1), img_x.size(1))
        gy = img_y[:, :, None].expand(1, img_y.size(1), img_x.size(1))
        grid = torch.stack([gx, gy], dim=3)  # [1, h, w, 2]
        pasted = F.grid_sample(masks[i][None, None], grid, align_corners=False)[0, 0]  # [h, w]
        out[i, y0_int:y1_int, x0_int:x1_int] = pasted >= threshold
    return out


class ROIHeads(nn.Module):
    """StandardROIHeads with the 4conv1fc LN box head, FastRCNNOutputLayers and the LN mask head."""

    def __init__(self, num_classes: int = 80) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.box_head = nn.Module()
        for k in range(1, 5):
            self.box_head.add_module(f'conv{k}', conv_ln_relu(256, 256))
        self.box_head.fc1 = nn.Linear(256 * 7 * 7, 1024)
        self.box_predictor = nn.Module()
        self.box_predictor.cls_score = nn.Linear(1024, num_classes + 1)  # background last
        self.box_predictor.bbox_pred = nn.Linear(1024, num_classes * 4)  # class-specific
        self.mask_head = nn.Module()
        for k in range(1, 5):
            self.mask_head.add_module(f'mask_fcn{k}', conv_ln_relu(256, 256))
        self.mask_head.deconv = nn.ConvTranspose2d(256, 256, 2, 2)
        self.mask_head.predictor = nn.Conv2d(256, num_classes, 1)

    def forward(self, features: List[Tensor], proposals: Tensor, image_size: Tuple[int, int],
                score_thresh: float = 0.05, nms_thresh: float = 0.5, topk: int = 100
                ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """One image: (boxes [D, 4], scores [D], classes [D], mask probabilities [D, 28, 28]) in the input's
        frame (image_size = the resized image before padding)."""
        x = pool(features, proposals, 7)  # [P, 256, 7, 7]
        for k in range(1, 5):
            x = getattr(self.box_head, f'conv{k}')(x)
        x = F.relu(self.box_head.fc1(torch.flatten(x, 1)))  # [P, 1024]
        scores = F.softmax(self.box_predictor.cls_score(x), dim=-1)[:, :-1]  # [P, K], background dropped
        boxes = apply_deltas(self.box_predictor.bbox_pred(x), proposals, (10.0, 10.0, 5.0, 5.0))  # [P, 4 K]
        boxes = clip(boxes.reshape(-1, 4), image_size).view(-1, self.num_classes, 4)  # [P, K, 4]
        filter_mask = scores > score_thresh
        filter_inds = filter_mask.nonzero()  # [D', 2]: proposal, class
        boxes, scores = boxes[filter_mask], scores[filter_mask]
        keep = batched_nms(boxes, scores, filter_inds[:, 1], nms_thresh)[:topk]
        boxes, scores, classes = boxes[keep], scores[keep], filter_inds[keep, 1]

        x = pool(features, boxes, 14)  # [D, 256, 14, 14]
        for k in range(1, 5):
            x = getattr(self.mask_head, f'mask_fcn{k}')(x)
        logits = self.mask_head.predictor(F.relu(self.mask_head.deconv(x)))  # [D, K, 28, 28]
        masks = logits[torch.arange(len(classes)), classes].sigmoid()  # [D, 28, 28]
        return boxes, scores, classes, masks


class MaskRCNN(nn.Module):
    """GeneralizedRCNN with `backbone` (SimpleFeaturePyramid over `net`), `proposal_generator`, `roi_heads`."""

    def __init__(self, arch: str = 'base', num_classes: int = 80) -> None:
        super().__init__()
        dims = ARCHS[arch]
        # norm_layer partial(nn.LayerNorm, eps=1e-6); img_size 1024 sizes the global blocks' rel-pos tables
        net = ViT(img_size=1024, window_size=14, use_rel_pos=True, norm_cfg=dict(type='LN', eps=1e-6),
                  pretrain_img_size=224, **dims)
        self.backbone = SimpleFeaturePyramid(net, dims['embed_dim'])
        self.proposal_generator = RPN()
        self.roi_heads = ROIHeads(num_classes)

    @torch.no_grad()
    def inference(self, images: Tensor, image_size: Tuple[int, int], output_size: Tuple[int, int]) -> Dict:
        """One preprocessed, padded image [1, 3, H, W] -> proposals (in the input frame) and the detections of
        detector_postprocess (in the original image of `output_size`)."""
        features = self.backbone(images)
        proposals, logits = self.proposal_generator(features, image_size)
        boxes, scores, classes, masks = self.roi_heads(features, proposals, image_size)
        scale_x, scale_y = output_size[1] / image_size[1], output_size[0] / image_size[0]
        boxes = clip(boxes * torch.tensor([scale_x, scale_y, scale_x, scale_y]), output_size)
        keep = nonempty(boxes)
        boxes, scores, classes, masks = boxes[keep], scores[keep], classes[keep], masks[keep]
        return dict(features=features, proposals=proposals, objectness_logits=logits, boxes=boxes, scores=scores,
                    classes=classes, masks=paste_masks(masks, boxes, output_size))
