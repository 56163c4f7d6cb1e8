"""GEMM FLOPs of an MAE pretraining step, counted from the architecture, and the machine's matmul throughput:
together the speed bound that `mae-transfer benchmark pretrain` compares each measured step with.

Only matrix products count (patch-embed conv, linears, the two attention matmuls): they are where the bound
is. LayerNorm, GELU, softmax, the gathers and the optimizer step are the "non-GEMM work" the measured step
pays on top, which is why a step reaches a fraction of the bound and never all of it.
"""
import time
from typing import Dict

import torch


def _block_flops(tokens: int, dim: int, hidden: int) -> int:
    """Forward GEMM FLOPs of one pre-norm transformer block on `tokens` tokens of width `dim` (MLP `hidden`)."""
    linears = 2 * tokens * dim * (3 * dim + dim + hidden + hidden)  # qkv, proj, fc1, fc2 (2 FLOPs per MAC)
    attention = 2 * 2 * tokens * tokens * dim  # q k^T and attn v, summed over heads: h * (T * T * d) each
    return linears + attention


def mae_step_gemm_flops(model: torch.nn.Module, mask_ratio: float, backward: bool = True) -> Dict[str, int]:
    """GEMM FLOPs per image of one MAE training step (forward, and backward when `backward`).

    Encoder on the 1 + L_keep visible tokens (cls included), decoder on all 1 + L tokens. The backward pass
    costs twice the forward (input and weight gradients), except the patch embedding whose input (the image)
    needs no gradient: once.

    Args:
        model: a `MaskedAutoencoderViT` (its widths, depths and grid are read from its modules).
        mask_ratio: fraction of patches removed; L_keep = int(L * (1 - mask_ratio)) as in `random_masking`.
        backward: count the backward pass too (a training step) or only the forward.

    Returns:
        dict(patch_embed, encoder, decoder, total) in FLOPs per image.
    """
    num_patches = model.num_patches
    encoder_tokens = 1 + int(num_patches * (1 - mask_ratio))
    decoder_tokens = 1 + num_patches
    dim, decoder_dim = model.embed_dim, model.decoder_embed_dim
    patch_dim = model.patch_size ** 2 * model.in_chans
    patch_embed = 2 * num_patches * patch_dim * dim  # the conv sees every patch, before masking
    encoder = sum(_block_flops(encoder_tokens, dim, block.mlp.fc1.out_features) for block in model.blocks)
    decoder = (2 * encoder_tokens * dim * decoder_dim  # decoder_embed
               + sum(_block_flops(decoder_tokens, decoder_dim, block.mlp.fc1.out_features)
                     for block in model.decoder_blocks)
               + 2 * decoder_tokens * decoder_dim * patch_dim)  # decoder_pred (cls row included, dropped later)
    factor = 3 if backward else 1
    counts = dict(patch_embed=patch_embed * (2 if backward else 1), encoder=encoder * factor,
                  decoder=decoder * factor)
    counts['total'] = sum(counts.values())
    return counts


def matmul_flops_per_s(dtype: torch.dtype, size: int = 2048, repeats: int = 8, allocations: int = 3,
                       device: str = 'cpu') -> float:
    """The machine's peak matmul throughput in FLOP/s: the fastest of `repeats` timed [size, size] @ [size, size]
    products in `dtype` on each of `allocations` fresh sets of operands, each set after two warm-ups (a large
    square GEMM runs near the peak the step's GEMMs can reach).

    The fastest, not the median: a bound is what the machine can do. On a 2-core AVX-512 CPU a bf16 product ran
    at either ~83 or ~148 GFLOP/s, depending on the operands' allocation, for all of a run's repeats; a median of
    a few products on one allocation moved the bound by 1.8x between processes.
    """
    times = []
    for _ in range(allocations):
        a = torch.randn(size, size, device=device).to(dtype)
        b = torch.randn(size, size, device=device).to(dtype)
        out = torch.empty(size, size, device=device, dtype=dtype)
        for index in range(repeats + 2):
            if device == 'cuda':
                torch.cuda.synchronize()
            start = time.perf_counter()
            torch.mm(a, b, out=out)
            if device == 'cuda':
                torch.cuda.synchronize()
            if index >= 2:  # the first products warm up the kernels (oneDNN builds its bf16 kernels) and caches
                times.append(time.perf_counter() - start)
    return 2 * size ** 3 / min(times)
