"""ViTClassifier: the MAE encoder with a classification head, for the paper's three transfer protocols.

- 'finetune' (end-to-end fine-tuning): every parameter trains; global average pooling of the patch tokens,
  `fc_norm` (LayerNorm) and a linear `head` initialised with std 2e-5, as in the official `models_vit.py`
  with `global_pool=True`; mixup / cutmix / label smoothing through timm's `Mixup` and
  `SoftTargetCrossEntropy`.
- 'linear_probe': the encoder is frozen and stays in eval mode even when the Runner calls `model.train()`;
  the cls token after the encoder's final `norm` goes through `BatchNorm1d(affine=False, eps=1e-6)` and a
  linear layer (std 0.01), `head = Sequential(bn, linear)` as in the official `main_linprobe.py`. The
  BatchNorm's running statistics are updated in training and saved with the model (they are buffers of
  `head.0`), so the evaluated model is the trained one.
- 'partial_finetune': as 'finetune', but the patch embedding (with cls token and position embedding) and the
  first `frozen_blocks` blocks are frozen and kept in eval mode (`MAEViT(frozen_stages=k)`).

The encoder is a `MAEViT` (or a registered subclass) under `backbone`, built from its config dict through our
MODELS registry whatever the default scope (`mae_transfer.utils.builder.build_module`), so
`init_cfg=dict(type='Pretrained', checkpoint=...)` loads any supported checkpoint and every parameter name is
`backbone.<official name>`: the layer-wise lr decay constructor gives `backbone.blocks.N` layer N + 1 and
`fc_norm` / `head` the top layer. The state dict converts to a timm `VisionTransformer` with
`mae_transfer.checkpoint.classifier_to_timm`; `mae_transfer.checkpoint.load_weights` (also behind mmengine's
`load_checkpoint` / `load_from`) reads a whole classifier back, head included, from ours, the official fine-tuned
MAE files or a timm ViT classifier.
"""
from typing import Any, Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from timm.layers import trunc_normal_
from torch import nn

from ...registry import MODELS
from ...utils.builder import build_module
from ..arch import get_arch
from ..backbones import MAEViT

PROTOCOLS = ('finetune', 'linear_probe', 'partial_finetune')
# Head initialisation of the official code: main_finetune.py (2e-5) and main_linprobe.py (0.01).
HEAD_INIT_STD = {'finetune': 2e-5, 'partial_finetune': 2e-5, 'linear_probe': 0.01}


@MODELS.register_module()
class ViTClassifier(BaseModel):
    """Image classifier on the MAE encoder (see the module docstring for the protocols).

    Args:
        backbone: `MAEViT` config, e.g. dict(type='MAEViT', arch='base', img_size=224, drop_path_rate=0.1,
            init_cfg=dict(type='Pretrained', checkpoint='checkpoints/mae_pretrain_vit_base.pth')).
            `final_norm` and `frozen_stages` are set from the protocol and pooling.
        num_classes: number of classes.
        protocol: 'finetune', 'linear_probe' or 'partial_finetune'.
        pool: 'avg' (mean of the patch tokens + `fc_norm`) or 'cls' (cls token after the encoder's `norm`);
            left out: 'avg' for fine-tuning, 'cls' for linear probing (the official defaults).
        frozen_blocks: 'partial_finetune' only: how many leading blocks stay frozen (0 .. depth).
        head_init_std: std of the head's truncated-normal initialisation; 2e-5 (fine-tuning) or 0.01 (linear
            probe) when left out.
        mixup: options of timm's `Mixup` (mixup_alpha, cutmix_alpha, prob, switch_prob, mode,
            label_smoothing, ...); None trains without mixup / cutmix. `num_classes` is filled in.
        label_smoothing: label smoothing when `mixup` is None (with mixup, its own `label_smoothing` applies).
        data_preprocessor: mmengine data preprocessor config; the datasets already normalise (timm transforms).
        init_cfg: mmengine init config of the whole model (the encoder's weights go in `backbone.init_cfg`).
    """

    def __init__(self, backbone: Union[dict, nn.Module], num_classes: int, protocol: str = 'finetune',
                 pool: Optional[str] = None, frozen_blocks: int = 0, head_init_std: Optional[float] = None,
                 mixup: Optional[dict] = None, label_smoothing: float = 0.0,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if protocol not in PROTOCOLS:
            raise ValueError(f'unknown protocol {protocol!r}; choose one of {PROTOCOLS}')
        pool = pool or ('cls' if protocol == 'linear_probe' else 'avg')
        if pool not in ('avg', 'cls'):
            raise ValueError(f"pool must be 'avg' or 'cls', got {pool!r}")
        if num_classes < 1:
            raise ValueError(f'num_classes must be positive, got {num_classes}')
        if frozen_blocks and protocol != 'partial_finetune':
            raise ValueError(f"frozen_blocks={frozen_blocks} needs protocol='partial_finetune' (got {protocol!r})")
        self.protocol = protocol
        self.pool = pool
        self.num_classes = num_classes
        if isinstance(backbone, nn.Module):
            self.backbone = backbone
        else:
            backbone = dict(backbone)
            # the final norm is part of the model only when the cls token is read (official: global_pool=False)
            backbone['final_norm'] = pool == 'cls'
            if protocol == 'partial_finetune':
                depth = backbone.get('depth') or _arch_depth(backbone.get('arch', 'base'))
                if not 0 <= frozen_blocks <= depth:
                    raise ValueError(f'frozen_blocks must be in 0 .. {depth}, got {frozen_blocks}')
                backbone['frozen_stages'] = frozen_blocks
            self.backbone = build_module(MODELS, backbone, type='MAEViT')
        if not isinstance(self.backbone, MAEViT):  # the encoder is read block by block (`_encode`)
            raise ValueError(f'ViTClassifier needs a MAEViT backbone (or a subclass), got {type(self.backbone)}')
        self.frozen_blocks = frozen_blocks if protocol == 'partial_finetune' else 0
        dim = self.backbone.embed_dim
        std = HEAD_INIT_STD[protocol] if head_init_std is None else head_init_std

        if protocol == 'linear_probe':
            self.backbone.requires_grad_(False)
            self.backbone.eval()
            linear = nn.Linear(dim, num_classes)
            # BatchNorm without affine parameters: a per-feature standardisation whose running statistics
            # are learned in training and saved (buffers head.0.running_mean / running_var)
            self.head = nn.Sequential(nn.BatchNorm1d(dim, affine=False, eps=1e-6), linear)
        else:
            self.fc_norm = nn.LayerNorm(dim, eps=1e-6) if pool == 'avg' else None
            linear = self.head = nn.Linear(dim, num_classes)
        trunc_normal_(linear.weight, std=std)
        nn.init.zeros_(linear.bias)

        self.mixup_fn = None
        if mixup is not None and protocol != 'linear_probe':
            from timm.data import Mixup
            self.mixup_fn = Mixup(**{**dict(mixup), 'num_classes': num_classes})
        self.label_smoothing = float(label_smoothing)

    # ------------------------------------------------------------------------------------------------ modes

    def train(self, mode: bool = True) -> 'ViTClassifier':
        """Set train/eval mode; a linear probe's encoder always stays in eval mode (no drop path, fixed
        features), frozen blocks of a partial fine-tune too (`MAEViT.train`)."""
        super().train(mode)
        if self.protocol == 'linear_probe':
            self.backbone.eval()
        return self

    # ------------------------------------------------------------------------------------------------ features

    def _encode(self, inputs: torch.Tensor) -> torch.Tensor:
        """Tokens [N, 1 + L, D] after the last block (before any final norm)."""
        backbone = self.backbone
        x = backbone.embed_patches(inputs)  # x: [N, L, D], pos_embed resized to the input's grid if needed
        x = backbone.prepend_cls_token(x)  # x: [N, 1 + L, D]
        for block in backbone.blocks:
            x = backbone._run_block(block, x)
        return x

    def extract_feat(self, inputs: torch.Tensor) -> torch.Tensor:
        """The pooled feature [N, D] the head classifies.

        Args:
            inputs: normalised images [N, 3, H, W], sides multiples of the patch size.
        """
        patch = self.backbone.patch_size
        if inputs.shape[-2] % patch or inputs.shape[-1] % patch:
            raise ValueError(f'input {tuple(inputs.shape[-2:])} is not a multiple of the patch size {patch}')
        if self.protocol == 'linear_probe':
            with torch.no_grad():  # frozen encoder: no activations kept for backward
                x = self._encode(inputs)
                return self.backbone.norm(x)[:, 0] if self.pool == 'cls' else self.backbone.norm(x)[:, 1:].mean(1)
        x = self._encode(inputs)  # x: [N, 1 + L, D]
        if self.pool == 'avg':
            return self.fc_norm(x[:, 1:, :].mean(dim=1))  # [N, D]
        return self.backbone.norm(x)[:, 0]  # [N, D]

    def forward_logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """Class logits [N, num_classes]."""
        return self.head(self.extract_feat(inputs))

    # ------------------------------------------------------------------------------------------------ protocol

    def forward(self, inputs: torch.Tensor, data_samples: Optional[Any] = None, mode: str = 'tensor'):
        """mmengine's forward protocol.

        Args:
            inputs: normalised images [N, 3, H, W].
            data_samples: class indices: a tensor [N] or a list of ints (None in 'tensor' mode).
            mode: 'loss' -> dict(loss=...); 'predict' -> one dict per image with `pred_score` (softmax
                [num_classes]), `pred_label` and `gt_label`; 'tensor' -> logits [N, num_classes].
        """
        if mode == 'loss':
            return self.loss(inputs, self._labels(data_samples, inputs.device))
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.forward_logits(inputs)
        raise ValueError(f'unknown mode {mode!r}; expected loss, predict or tensor')

    @staticmethod
    def _labels(data_samples: Any, device: torch.device) -> torch.Tensor:
        if data_samples is None:
            raise ValueError('training needs the labels (data_samples)')
        if isinstance(data_samples, torch.Tensor):
            return data_samples.to(device=device, dtype=torch.long).flatten()
        return torch.as_tensor([int(s) for s in data_samples], dtype=torch.long, device=device)

    def loss(self, inputs: torch.Tensor, labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Cross-entropy; with mixup / cutmix (timm `Mixup`, applied to the batch here) against soft targets."""
        if self.mixup_fn is not None and self.training:
            if inputs.shape[0] % 2 == 0:
                inputs, targets = self.mixup_fn(inputs, labels)  # targets: [N, C] mixed, label-smoothed
            else:  # timm's Mixup pairs images: an odd batch trains unmixed, with the same smoothing
                from timm.data.mixup import mixup_target
                targets = mixup_target(labels, self.num_classes, 1.0, self.mixup_fn.label_smoothing)
            logits = self.forward_logits(inputs)
            from timm.loss import SoftTargetCrossEntropy
            return dict(loss=SoftTargetCrossEntropy()(logits, targets))
        logits = self.forward_logits(inputs)
        return dict(loss=F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing))

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor, data_samples: Optional[Any] = None) -> List[Dict[str, Any]]:
        """Scores per image, in the form `mae_transfer.Accuracy` reads."""
        scores = self.forward_logits(inputs).float().softmax(dim=-1)  # [N, C]
        labels: Sequence[Optional[int]] = ([None] * len(scores) if data_samples is None
                                           else self._labels(data_samples, scores.device).tolist())
        return [dict(pred_score=score.cpu(), pred_label=int(score.argmax()), gt_label=label)
                for score, label in zip(scores, labels)]

    def trainable_parameter_names(self) -> List[str]:
        """Names of the parameters the optimiser updates (what the protocol leaves trainable)."""
        return [name for name, param in self.named_parameters() if param.requires_grad]


def _arch_depth(arch: str) -> int:
    return get_arch(arch).depth


__all__ = ['PROTOCOLS', 'ViTClassifier']
