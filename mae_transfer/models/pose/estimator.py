"""TopdownPoseEstimator: MAE ViT backbone + heatmap head, speaking mmengine's BaseModel protocol (ViTPose).

`forward(inputs, data_samples, mode)`:

- 'loss': heatmaps from the head vs the codec's targets (`heatmaps`, `keypoint_weights` of each data sample,
  made by `GenerateHeatmapTarget`), target-weighted MSE; also logs `acc_pose` (PCK@0.05 of the heatmap size).
- 'predict': optional flip test (heatmaps of the mirrored crop, flipped back with left/right channels swapped,
  averaged; shifted one pixel for the classic codec), codec decoding with sub-pixel refinement, mapping back to
  image pixels with the crop's centre / scale. Each data sample comes back with `pred_keypoints` [K, 2] and
  `keypoint_scores` [K] (numpy); `CocoKeypointMetric` rescales instance scores and applies OKS NMS.
- 'tensor': the raw heatmaps [N, K, h, w].

Sub-modules are built from their config dicts through our registries, whatever the default scope
(`mae_transfer.utils.builder.build_module`): `backbone` (MODELS; MAEViT when `type` is left out, its `init_cfg` is
where `--pretrained` points), `head` (MODELS, e.g. `HeatmapHead` / `SimpleHeatmapHead`; `in_channels` defaults
to the backbone's `embed_dim`), `loss` (MODELS, `KeypointMSELoss` when `type` is left out) and `codec`
(TASK_UTILS, `MSRAHeatmap` / `UDPHeatmap`). A class a user registers into those registries works the same way.
"""
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement

from ...codecs.coco_keypoints import COCO_FLIP_INDICES
from ...codecs.geometry import crop_to_image
from ...registry import MODELS, TASK_UTILS
from ...utils.builder import build_module
from .batch_decode import decode_batch

IMAGENET_PREPROCESSOR = dict(type='ImgDataPreprocessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                             bgr_to_rgb=True)


def pck_accuracy(output: torch.Tensor, target: torch.Tensor, weights: torch.Tensor, thr: float = 0.05) -> torch.Tensor:
    """Fraction of weighted keypoints whose heatmap arg-max lies within `thr` x heatmap size of the target's."""
    n, k, h, w = output.shape

    def argmax_xy(maps: torch.Tensor) -> torch.Tensor:
        index = maps.reshape(n, k, -1).argmax(-1)  # [N, K]
        return torch.stack([index % w, index // w], dim=-1).float()  # [N, K, 2]

    norm = torch.tensor([w, h], dtype=torch.float32, device=output.device)
    distance = ((argmax_xy(output) - argmax_xy(target)) / norm).norm(dim=-1)  # [N, K]
    valid = weights > 0
    if not valid.any():
        return output.new_tensor(0.0)
    return (distance[valid] <= thr).float().mean()


@MODELS.register_module()
class TopdownPoseEstimator(BaseModel):
    """Top-down heatmap pose estimation on a plain ViT (ViTPose).

    Args:
        backbone: backbone config, MAEViT when `type` is left out (e.g. arch='base', img_size=224,
            use_cls_token=False, drop_path_rate=0.3, init_cfg=dict(type='Pretrained', checkpoint=...)); its
            forward returns feature maps, the last one [N, C, h, w] feeds the head.
        head: head config (HeatmapHead, SimpleHeatmapHead or a registered head); `in_channels` defaults to the
            backbone's `embed_dim`.
        codec: heatmap codec config, the same as the pipeline's `GenerateHeatmapTarget(encoder=...)`.
        loss: loss config, KeypointMSELoss when `type` is left out (use_target_weight, loss_weight); called as
            loss(heatmaps, targets, keypoint_weights).
        test_cfg: dict(flip_test=True, shift_heatmap=None (classic codec: True, UDP: False), flip_indices=None).
        data_preprocessor: mmengine preprocessor config; ImageNet mean/std, BGR -> RGB when left out.
        init_cfg: mmengine init config of the whole model.
    """

    def __init__(self, backbone: dict, head: dict, codec: dict, loss: Optional[dict] = None,
                 test_cfg: Optional[dict] = None, data_preprocessor: Optional[Union[dict, torch.nn.Module]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor or dict(IMAGENET_PREPROCESSOR), init_cfg=init_cfg)
        self.backbone = build_module(MODELS, backbone, type='MAEViT')
        width = getattr(self.backbone, 'embed_dim', None)
        self.head = build_module(MODELS, head, **({} if width is None else dict(in_channels=width)))
        self.codec = build_module(TASK_UTILS, codec)
        self.loss_module = build_module(MODELS, loss or {}, type='KeypointMSELoss')
        self.test_cfg = dict(test_cfg or {})

    # ------------------------------------------------------------------------------------------------ compute

    def extract_feat(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.backbone(inputs)[-1]  # [N, D, H / 16, W / 16]

    def forward_heatmaps(self, inputs: torch.Tensor) -> torch.Tensor:
        """Normalised crops [N, 3, H, W] -> heatmaps [N, K, h, w]."""
        return self.head(self.extract_feat(inputs))

    def forward(self, inputs: torch.Tensor, data_samples: Optional[List[BaseDataElement]] = None,
                mode: str = 'tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.forward_heatmaps(inputs)
        raise ValueError(f'unknown mode {mode!r}; expected loss, predict or tensor')

    def loss(self, inputs: torch.Tensor, data_samples: List[BaseDataElement]) -> Dict[str, torch.Tensor]:
        heatmaps = self.forward_heatmaps(inputs)  # [N, K, h, w]
        target = torch.stack([s.heatmaps for s in data_samples]).to(heatmaps)  # [N, K, h, w]
        weights = torch.stack([s.keypoint_weights for s in data_samples]).to(heatmaps)  # [N, K]
        if target.shape != heatmaps.shape:
            raise ValueError(f'head output {tuple(heatmaps.shape)} and targets {tuple(target.shape)} differ: check '
                             'the codec heatmap_size against the input size and the head')
        with torch.no_grad():
            accuracy = pck_accuracy(heatmaps.detach().float(), target, weights)
        return dict(loss_kpt=self.loss_module(heatmaps, target, weights), acc_pose=accuracy)

    # ------------------------------------------------------------------------------------------------ inference

    def _flip_indices(self, data_samples: Optional[Sequence[BaseDataElement]]) -> Sequence[int]:
        if self.test_cfg.get('flip_indices') is not None:
            return self.test_cfg['flip_indices']
        if data_samples and 'flip_indices' in data_samples[0]:
            return data_samples[0].flip_indices
        return COCO_FLIP_INDICES

    @torch.no_grad()
    def predict_heatmaps(self, inputs: torch.Tensor,
                         data_samples: Optional[Sequence[BaseDataElement]] = None) -> torch.Tensor:
        """Heatmaps [N, K, h, w], averaged with the flipped crop's when test_cfg.flip_test (default True)."""
        if not self.test_cfg.get('flip_test', True):
            return self.forward_heatmaps(inputs)
        # one forward pass over the crops and their mirror images: half the passes (and kernel launches)
        both = self.forward_heatmaps(torch.cat([inputs, inputs.flip(-1)]))  # both: [2N, K, h, w]
        heatmaps, flipped = both.chunk(2)  # each: [N, K, h, w]
        order = torch.as_tensor(list(self._flip_indices(data_samples)), device=heatmaps.device)
        flipped = flipped.flip(-1)[:, order]  # back to the original frame
        shift = self.test_cfg.get('shift_heatmap')
        if shift is None:
            shift = not self.codec.use_udp  # classic pixels are off by 3/4 px after a flip; UDP is exact
        if shift:
            flipped[..., 1:] = flipped[..., :-1].clone()
        return (heatmaps + flipped) * 0.5

    def predict(self, inputs: torch.Tensor, data_samples: List[BaseDataElement]) -> List[BaseDataElement]:
        heatmaps = self.predict_heatmaps(inputs, data_samples).float().cpu().numpy()  # [N, K, h, w]
        expected = self.codec.heatmap_size[::-1]
        if heatmaps.shape[-2:] != expected:
            raise ValueError(f'head output {heatmaps.shape[-2:]} differs from the codec heatmap size (h, w) '
                             f'{expected}')
        all_keypoints, all_scores = decode_batch(self.codec, heatmaps)  # input-crop pixels [N, K, 2], [N, K]
        for sample, keypoints, scores in zip(data_samples, all_keypoints, all_scores):
            input_size = sample.get('input_size', np.array(self.codec.input_size, np.float32))
            sample.pred_keypoints = crop_to_image(keypoints, np.asarray(sample.input_center),
                                                  np.asarray(sample.input_scale), input_size,
                                                  self.codec.use_udp).astype(np.float32)
            sample.keypoint_scores = scores.astype(np.float32)
        return data_samples


__all__ = ['TopdownPoseEstimator', 'pck_accuracy']
