"""MAE reconstructions in pixels, the way the paper shows them (drawn by `mae_transfer.visualization`).

The reconstruction pastes the visible patches back, so only the removed patches show the model's output.
A model trained with norm_pix_loss predicts each patch normalised by its own mean and std; those are taken
from the original image's patch to bring the prediction back to pixels.
"""
from typing import Dict, Optional, Sequence

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD


@torch.no_grad()
def reconstruct(model: torch.nn.Module, imgs: torch.Tensor, mask_ratio: float = 0.75,
                noise: Optional[torch.Tensor] = None, mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
                std: Sequence[float] = IMAGENET_DEFAULT_STD) -> Dict[str, torch.Tensor]:
    """Run `model` (a MaskedAutoencoderViT) on normalised `imgs` [N, 3, H, W] and return pixel images in [0, 1].

    Args:
        model: the MAE (its mode is restored afterwards).
        imgs: normalised images [N, 3, H, W].
        mask_ratio: fraction of patches removed.
        noise: [N, L] noise that chooses the mask (random when None).
        mean: normalisation mean of `imgs` per RGB channel, in [0, 1] units.
        std: normalisation std of `imgs` per RGB channel, in [0, 1] units.

    Returns:
        a dict of [N, 3, H, W] tensors: 'masked' (removed patches grey), 'reconstruction' (prediction in the
        removed patches, the original in the visible ones), 'prediction' (raw prediction everywhere) and
        'original'; plus 'mask' [N, L] (1 = removed) and the loss.
    """
    was_training = model.training
    model.eval()
    loss, pred, mask = model(imgs, mask_ratio=mask_ratio, noise=noise)  # pred: [N, L, p*p*3], mask: [N, L]
    model.train(was_training)
    grid_hw = (imgs.shape[2] // model.patch_size, imgs.shape[3] // model.patch_size)
    target = model.patchify(imgs)  # [N, L, p*p*3]
    if model.norm_pix_loss:
        patch_mean = target.mean(dim=-1, keepdim=True)
        patch_var = target.var(dim=-1, keepdim=True)
        pred = pred * (patch_var + 1.e-6) ** 0.5 + patch_mean
    removed = mask.unsqueeze(-1)  # [N, L, 1]
    pasted = target * (1 - removed) + pred * removed
    masked = target * (1 - removed)

    mean_t = torch.tensor(mean, device=imgs.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=imgs.device).view(1, 3, 1, 1)

    def to_pixels(patches: torch.Tensor) -> torch.Tensor:
        images = model.unpatchify(patches, grid_hw)  # [N, 3, H, W], normalised
        return (images * std_t + mean_t).clamp(0, 1)

    removed_pixels = _patch_mask_to_pixels(mask, model.patch_size, grid_hw)  # [N, 1, H, W]
    masked_pixels = to_pixels(masked) * (1 - removed_pixels) + 0.5 * removed_pixels  # removed patches: grey
    return dict(masked=masked_pixels, reconstruction=to_pixels(pasted), prediction=to_pixels(pred),
                original=(imgs * std_t + mean_t).clamp(0, 1), mask=mask, loss=loss)


def _patch_mask_to_pixels(mask: torch.Tensor, patch_size: int, grid_hw) -> torch.Tensor:
    """[N, L] patch mask -> [N, 1, H, W] pixel mask."""
    n = mask.shape[0]
    mask = mask.view(n, 1, grid_hw[0], grid_hw[1])  # [N, 1, h, w]
    return mask.repeat_interleave(patch_size, dim=2).repeat_interleave(patch_size, dim=3)  # [N, 1, H, W]


__all__ = ['reconstruct']
