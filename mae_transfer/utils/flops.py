"""GEMM FLOPs of an MAE pretraining step, counted from the architecture, and the machine's matmul throughput:
together the speed bound that `mae-transfer benchmark pretrain` compares each measured step with.

Only matrix products count (patch-embed conv, linears, the two attention matmuls): they are where the bound
is. LayerNorm, GELU, softmax, the gathers and the optimizer step are the "non-GEMM work" the measured step
pays on top, which is why a step reaches a fraction of the bound and never all of it.

The bound assumes every product runs as fast as a large square one. The step's own products are smaller (the
encoder of a batch of 8 sees 400 visible tokens), and `time_gemms` measures them alone, at their shapes: the
step can come no closer to the bound than they do, whatever non-GEMM work is removed (the "ceiling").

On a GPU the same step is also judged against the device's datasheet peak: model FLOPs utilisation (MFU,
`model_flops_utilisation`, with `peak_tflops_for` the peak of a device name), shared by `benchmark pretrain`
and the GPU check (which counts a step's FLOPs with `count_step_flops`).
"""
import re
import time
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch


class Gemm(NamedTuple):
    """`count` matrix products [batch, m, k] @ [batch, k, n] of one step (batch 1: a plain product), in `part`."""
    part: str
    batch: int
    m: int
    k: int
    n: int
    count: int = 1

    @property
    def flops(self) -> int:
        return 2 * self.count * self.batch * self.m * self.k * self.n  # 2 FLOPs per multiply-add


def _linear(part: str, rows: int, fan_in: int, fan_out: int, backward: bool, input_grad: bool = True) -> List[Gemm]:
    """y = x W^T on `rows` tokens; backward: dx = dy W (unless the input needs no gradient) and dW = dy^T x."""
    products = [Gemm(part, 1, rows, fan_in, fan_out)]
    if backward:
        products += [Gemm(part, 1, rows, fan_out, fan_in)] if input_grad else []
        products.append(Gemm(part, 1, fan_out, rows, fan_in))
    return products


def _block(part: str, images: int, tokens: int, dim: int, hidden: int, heads: int, backward: bool) -> List[Gemm]:
    """The products of one pre-norm transformer block on `images` sequences of `tokens` tokens of width `dim`."""
    rows, sequences, head_dim = images * tokens, images * heads, dim // heads
    products = [*_linear(part, rows, dim, 3 * dim, backward), *_linear(part, rows, dim, dim, backward),
                *_linear(part, rows, dim, hidden, backward), *_linear(part, rows, hidden, dim, backward)]
    products += [Gemm(part, sequences, tokens, head_dim, tokens),  # q k^T, per head
                 Gemm(part, sequences, tokens, tokens, head_dim)]  # p v
    if backward:
        products += [Gemm(part, sequences, tokens, head_dim, tokens),  # dP = dO v^T
                     Gemm(part, sequences, tokens, tokens, head_dim, count=3)]  # dv = P^T dO, dq = dS k, dk = dS^T q
    return products


def mae_step_gemms(model: torch.nn.Module, mask_ratio: float, images: int = 1, backward: bool = True) -> List[Gemm]:
    """Every matrix product of one MAE training step on `images` images (forward, and backward when `backward`).

    Encoder on the 1 + L_keep visible tokens (cls included), decoder on all 1 + L tokens. The backward pass
    costs two products per forward one (input and weight gradients), except the patch embedding whose input (the
    image) needs no gradient: one.

    Args:
        model: a `MaskedAutoencoderViT` (its widths, depths and grid are read from its modules).
        mask_ratio: fraction of patches removed; L_keep = int(L * (1 - mask_ratio)) as in `random_masking`.
        images: the batch.
        backward: count the backward pass too (a training step) or only the forward.
    """
    num_patches = model.num_patches
    encoder_tokens = 1 + int(num_patches * (1 - mask_ratio))
    decoder_tokens = 1 + num_patches
    dim, decoder_dim = model.embed_dim, model.decoder_embed_dim
    patch_dim = model.patch_size ** 2 * model.in_chans
    # the patch conv sees every patch, before masking
    products = _linear('patch_embed', images * num_patches, patch_dim, dim, backward, input_grad=False)
    for block in model.blocks:
        products += _block('encoder', images, encoder_tokens, dim, block.mlp.fc1.out_features,
                           block.attn.num_heads, backward)
    products += _linear('decoder', images * encoder_tokens, dim, decoder_dim, backward)  # decoder_embed
    for block in model.decoder_blocks:
        products += _block('decoder', images, decoder_tokens, decoder_dim, block.mlp.fc1.out_features,
                           block.attn.num_heads, backward)
    # decoder_pred (the cls row included, dropped later)
    return products + _linear('decoder', images * decoder_tokens, decoder_dim, patch_dim, backward)


def mae_step_gemm_flops(model: torch.nn.Module, mask_ratio: float, backward: bool = True) -> Dict[str, int]:
    """GEMM FLOPs per image of one MAE training step (`mae_step_gemms`): dict(patch_embed, encoder, decoder,
    total)."""
    counts = dict(patch_embed=0, encoder=0, decoder=0)
    for gemm in mae_step_gemms(model, mask_ratio, backward=backward):
        counts[gemm.part] += gemm.flops
    counts['total'] = sum(counts.values())
    return counts


def fastest_product_s(a: torch.Tensor, b: torch.Tensor, repeats: int, warmups: int, device: str = 'cpu',
                      out: Optional[torch.Tensor] = None) -> float:
    """Seconds of the fastest of `repeats` timed products `a @ b` (into `out` if given), after `warmups` untimed
    ones that warm up the kernel and the caches."""
    times = []
    for index in range(warmups + repeats):
        if device == 'cuda':
            torch.cuda.synchronize()  # queued kernels must not count
        start = time.perf_counter()
        torch.matmul(a, b, out=out)
        if device == 'cuda':
            torch.cuda.synchronize()
        if index >= warmups:
            times.append(time.perf_counter() - start)
    return min(times)


def time_gemms(gemms: List[Gemm], dtype: torch.dtype, repeats: int = 5, device: str = 'cpu') -> float:
    """Seconds that `gemms` take alone: each distinct shape is timed on fresh operands (the fastest of `repeats`
    products after one warm-up) and counted as often as the step runs it.

    The operands are contiguous; autograd's transposed views and the CPU flash-attention kernel's blocked
    products differ a little from that, so this is an estimate of what the step's products cost, not a
    replay of them.
    """
    calls: Dict[tuple, int] = {}
    for gemm in gemms:
        shape = (gemm.batch, gemm.m, gemm.k, gemm.n)
        calls[shape] = calls.get(shape, 0) + gemm.count
    total = 0.0
    for (batch, m, k, n), count in calls.items():
        a = torch.randn(batch, m, k, device=device).to(dtype)
        b = torch.randn(batch, k, n, device=device).to(dtype)
        if batch == 1:
            a, b = a[0], b[0]
        total += count * fastest_product_s(a, b, repeats, warmups=1, device=device)
    return total


def matmul_flops_per_s(dtype: torch.dtype, size: int = 2048, repeats: int = 8, allocations: int = 3,
                       device: str = 'cpu') -> float:
    """The machine's peak matmul throughput in FLOP/s: the fastest of `repeats` timed [size, size] @ [size, size]
    products in `dtype` on each of `allocations` fresh sets of operands, each set after two warm-ups (a large
    square GEMM runs near the peak the step's GEMMs can reach).

    The fastest, not the median: a bound is what the machine can do. On a 2-core AVX-512 CPU a bf16 product ran
    at either ~83 or ~148 GFLOP/s, depending on the operands' allocation, for all of a run's repeats; a median of
    a few products on one allocation moved the bound by 1.8x between processes.
    """
    fastest = float('inf')
    for _ in range(allocations):
        a = torch.randn(size, size, device=device).to(dtype)
        b = torch.randn(size, size, device=device).to(dtype)
        out = torch.empty(size, size, device=device, dtype=dtype)
        # two warm-ups: oneDNN builds its bf16 kernels on the first product
        fastest = min(fastest, fastest_product_s(a, b, repeats, warmups=2, device=device, out=out))
    return 2 * size ** 3 / fastest


# Peak dense bf16 tensor FLOP/s by device name (datasheets; sparse figures halved); first match wins.
PEAK_BF16_TFLOPS: Sequence[Tuple[str, float, str]] = (
    (r'\bGH200\b', 989.0, 'GH200'),
    (r'\bH200\b', 989.0, 'H200 SXM'),
    (r'\bH100\b.*\bPCIE\b', 756.0, 'H100 PCIe'),
    (r'\bH100\b.*\bNVL\b', 835.0, 'H100 NVL'),
    (r'\bH100\b', 989.0, 'H100 SXM'),
    (r'\bH800\b', 989.0, 'H800 SXM'),
    (r'\bB200\b', 2250.0, 'B200'),
    (r'\bA100\b', 312.0, 'A100'),
    (r'\bA800\b', 312.0, 'A800'),
    (r'\bL40S\b', 362.0, 'L40S'),
    (r'\bL40\b', 181.0, 'L40'),
    (r'\bL4\b', 121.0, 'L4'),
    (r'\bA10G\b', 70.0, 'A10G'),
    (r'\bA10\b', 125.0, 'A10'),
    (r'\bRTX 4090\b', 165.0, 'RTX 4090'),
    (r'\bRTX 3090\b', 71.0, 'RTX 3090'),
    (r'\bRTX 6000 ADA\b', 364.0, 'RTX 6000 Ada'),
)


def peak_tflops_for(device_name: str) -> Optional[Tuple[float, str]]:
    """(peak dense bf16 TFLOP/s, the table's label) of a CUDA device name, or None for one not in the table."""
    for pattern, tflops, label in PEAK_BF16_TFLOPS:
        if re.search(pattern, device_name, flags=re.IGNORECASE):
            return tflops, label
    return None


def model_flops_utilisation(flops_per_step: float, step_s: float, peak_tflops: float) -> float:
    """Achieved FLOP/s (the model's FLOPs of one step over its time) as a fraction of the device's peak."""
    if step_s <= 0 or peak_tflops <= 0:
        raise ValueError(f'step time and peak must be positive, got {step_s} s and {peak_tflops} TFLOP/s')
    return flops_per_step / step_s / (peak_tflops * 1e12)


def count_step_flops(model: torch.nn.Module, compute_loss: Callable[[], torch.Tensor], device: str) -> float:
    """Model FLOPs of one forward + backward under bf16 autocast, as `FlopCounterMode` counts them (matmuls,
    convolutions, attention); the optimizer's elementwise work is not model FLOPs. Gradients are dropped."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            loss = compute_loss()
        loss.backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())
