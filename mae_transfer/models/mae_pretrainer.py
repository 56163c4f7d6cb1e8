"""MAEPretrainer: the registered mmengine model that trains a `MaskedAutoencoderViT` with the Runner.

The MAE core knows nothing of configs; this wrapper picks it by architecture name, owns the data
preprocessor (uint8 crops -> normalised float batch) and speaks mmengine's forward protocol.
"""
from typing import Any, Optional, Tuple, Union

import torch
from mmengine.model import BaseModel

from ..registry import MODELS
from .mae import MAE_FACTORIES


@MODELS.register_module()
class MAEPretrainer(BaseModel):
    """Masked-autoencoder pretraining for the mmengine Runner.

    Args:
        arch: one of 'tiny', 'small', 'base', 'large', 'huge' (the `mae_vit_*` factories).
        mask_ratio: fraction of patches removed per image.
        data_preprocessor: mmengine data preprocessor config (mean/std in 0-255 units).
        init_cfg: mmengine init config; dict(type='Pretrained', checkpoint=...) loads the MAE model (encoder
            and decoder) with `mae_transfer.checkpoint.load_weights` (mmengine's initialiser, routed there): official files, our own checkpoints,
            any supported format.
        **mae_kwargs: passed to the factory: img_size, norm_pix_loss, decoder_*, drop_path_rate.
    """

    def __init__(self, arch: str = 'base', mask_ratio: float = 0.75,
                 data_preprocessor: Optional[Union[dict, torch.nn.Module]] = None,
                 init_cfg: Optional[dict] = None, **mae_kwargs: Any):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if arch not in MAE_FACTORIES:
            raise ValueError(f'unknown MAE arch {arch!r}; choose one of {sorted(MAE_FACTORIES)}')
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f'mask_ratio must be in [0, 1), got {mask_ratio}')
        self.arch = arch
        self.mask_ratio = mask_ratio
        self.mae = MAE_FACTORIES[arch](**mae_kwargs)

    @property
    def pixel_mean(self) -> Tuple[float, ...]:
        """Normalisation mean in [0, 1] units (for pictures)."""
        return tuple((self.data_preprocessor.mean.flatten() / 255).tolist())

    @property
    def pixel_std(self) -> Tuple[float, ...]:
        return tuple((self.data_preprocessor.std.flatten() / 255).tolist())

    def forward(self, inputs: torch.Tensor, data_samples: Optional[list] = None, mode: str = 'loss'):
        """`inputs`: normalised images [N, 3, H, W]. 'loss' -> dict(loss); 'tensor'/'predict' -> (pred, mask)."""
        loss, pred, mask = self.mae(inputs, mask_ratio=self.mask_ratio)
        if mode == 'loss':
            return dict(loss=loss)
        if mode in ('tensor', 'predict'):
            return pred, mask
        raise ValueError(f'unknown mode {mode!r}; expected loss, tensor or predict')
