"""Small ViT models and checkpoint writers shared by the tests in tests/checkpoint/."""
import argparse
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch
from safetensors.torch import save_file

from mae_transfer.checkpoint import CheckpointMeta
from mae_transfer.models.layers.vit import ViTEncoder
from mae_transfer.models.mae import MaskedAutoencoderViT

StateDict = Dict[str, torch.Tensor]
EMBED, DEPTH, HEADS, IMG = 64, 2, 2, 32


def small_mae(img_size=IMG, seed: int = 0, learned_pos: bool = True) -> MaskedAutoencoderViT:
    """A tiny MAE with random weights everywhere (norms included, so a swapped norm shows up); the encoder's
    pos_embed is random too unless `learned_pos` is False (then MAE's fixed sin-cos table)."""
    torch.manual_seed(seed)
    model = MaskedAutoencoderViT(img_size=img_size, patch_size=16, embed_dim=EMBED, depth=DEPTH, num_heads=HEADS,
                                 decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name != 'pos_embed' or learned_pos:
                param.normal_(0.0, 0.3)
    return model.eval()


def encoder_keys(model: torch.nn.Module) -> StateDict:
    return {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(('decoder_', 'mask_token'))}


def sample_images(img_size: Tuple[int, int]) -> torch.Tensor:
    return torch.randn(2, 3, *img_size, generator=torch.Generator().manual_seed(1))


def features(state_dict: StateDict, meta: CheckpointMeta, num_heads: int = HEADS,
             img: Optional[torch.Tensor] = None) -> torch.Tensor:
    """forward_features of a fresh ViTEncoder built from `meta` and loaded strictly with `state_dict`."""
    encoder = ViTEncoder(img_size=meta.img_size, patch_size=meta.patch_size, embed_dim=meta.embed_dim,
                         depth=meta.depth, num_heads=meta.num_heads or num_heads, mlp_ratio=meta.mlp_ratio,
                         qkv_bias=meta.qkv_bias).eval()
    encoder.load_state_dict(state_dict, strict=True)
    with torch.no_grad():
        return encoder.forward_features(img if img is not None else sample_images(meta.img_size))


def reference(model: torch.nn.Module, img_size=(IMG, IMG)) -> torch.Tensor:
    with torch.no_grad():
        return model.forward_features(sample_images(img_size))


def official_pretrain(mae) -> dict:
    """The layout of the official `mae_pretrain_vit_*.pth`: encoder weights under 'model', plus its args."""
    return {'model': encoder_keys(mae), 'args': argparse.Namespace(model='mae_vit_tiny', input_size=IMG)}


def save(checkpoint, path: Path) -> Path:
    """torch.save, or safetensors for a `.safetensors` path (a bare dict of tensors then)."""
    if path.suffix == '.safetensors':
        save_file({k: v.contiguous() for k, v in checkpoint.items()}, str(path))
    else:
        torch.save(checkpoint, path)
    return path
