"""MAE pretraining benchmark: images/s of one forward + backward + AdamW step, and the encoder's forward time
alone, which shrinks with the mask ratio (it sees only the visible patches).

    mae-transfer benchmark pretrain                       # ViT-B/16, batch 8, 224, mask 0.75, fp32 and bf16
    mae-transfer benchmark pretrain --arch large --batch 4 --mask-ratios 0.0 0.75 --dtypes fp32
    mae-transfer benchmark pretrain --profile             # where the time goes (top ops)
    mae-transfer benchmark pretrain --dtypes fp32 bf16 bf16-master   # + bf16 weights, fp32 master copies

Dtypes: fp32; bf16 and fp16 under autocast (AutocastOptimWrapper / AmpOptimWrapper); bf16-master: the forward
and backward on bf16 copies of fp32 master weights, no autocast (Bf16MasterWeightsOptimWrapper).

Each row also prints the step's GEMM FLOPs per image (`utils.flops.mae_step_gemm_flops`), the bound they give
at the matmul throughput measured on this machine in the dtype of the step's GEMMs (`matmul_flops_per_s`), and
measured / bound: a figure that travels between machines. `GEMM s` times the step's own products alone at their
shapes (`utils.flops.time_gemms`) and `ceiling` is the share of the bound they reach: small products (the
encoder of a small batch sees few tokens) stay below the square-matrix speed, so the step's ratio cannot pass
the ceiling, and the gap between the two is the non-GEMM work.

On a GPU each bf16 row also prints the model FLOPs utilisation (MFU): the step's GEMM FLOPs over its time, as a
share of the device's datasheet dense bf16 peak (`utils.flops.peak_tflops_for`, as the GPU check uses it).
`--bound-size` / `--bound-repeats` shrink the bound's matmuls (a test's tiny bound; the default is a measurement).

Each measurement runs in a fresh process so that its peak memory is its own (CPU: peak RSS; GPU: peak
allocated). Numbers are printed, never asserted: machines are shared and noisy.
"""
import argparse
import json
import time
from typing import List, Optional

import torch

from mae_transfer.utils.benchmarking import (default_device, median, peak_memory_mib, print_profile,
                                             run_in_fresh_process, time_training_steps)
from mae_transfer.utils.flops import (mae_step_gemm_flops, mae_step_gemms, matmul_flops_per_s,
                                      model_flops_utilisation, peak_tflops_for, time_gemms)

DTYPES = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16, 'bf16-master': None}
GEMM_DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16, 'bf16-master': torch.bfloat16}


class _RestoreThenStep:
    """The optimizer of a bf16-master step: fp32 weights and gradients back, then the optimizer step."""

    def __init__(self, weights, optimizer: torch.optim.Optimizer) -> None:
        self.weights, self.optimizer = weights, optimizer

    def step(self) -> None:
        self.weights.restore()
        self.optimizer.step()


def measure(arch: str, batch: int, img_size: int, mask_ratio: float, dtype: str, iters: int, warmup: int,
            threads: int, profile: bool, compile_backend: Optional[str] = None, bound_size: int = 2048,
            bound_repeats: int = 8) -> dict:
    """One pretraining measurement in this process (`main` runs each in a fresh one); the bound's square matmuls
    are [bound_size]^2, the fastest of `bound_repeats` (the step's own GEMMs: of up to 5)."""
    from mae_transfer.engine import StepWeightCast
    from mae_transfer.models import MAE_FACTORIES
    if threads:
        torch.set_num_threads(threads)
    device = default_device()
    torch.manual_seed(0)
    model = MAE_FACTORIES[arch](img_size=img_size, norm_pix_loss=True).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05, fused=True)
    imgs = torch.randn(batch, 3, img_size, img_size, device=device)
    cast = DTYPES[dtype]
    master = StepWeightCast(model, torch.bfloat16) if dtype == 'bf16-master' else None

    def compute_loss() -> torch.Tensor:
        if master is not None:
            master.cast()  # bf16 weights (and input) for this forward + backward
        return model(imgs, mask_ratio=mask_ratio)[0]

    def steps(count: int) -> dict:
        return time_training_steps(model, compute_loss, count, device=device, dtype=cast,
                                   optimizer=optimizer if master is None else _RestoreThenStep(master, optimizer))

    if compile_backend:
        model.compile(backend=compile_backend)  # what tools/train.py --compile does (engine.CompileHook)
    first_step_s = steps(1)['step_s'][0]  # compilation included when compiled
    steps(max(0, warmup - 1))
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    if profile:
        print_profile(lambda: steps(1), device)
    step_s = median(steps(iters)['step_s'])
    encoder_times = []  # the encoder alone, forward only: what masking saves
    if master is not None:
        master.cast()
    encoder_imgs = imgs.bfloat16() if master is not None else imgs
    with torch.no_grad(), torch.autocast(device_type=device, dtype=cast or torch.bfloat16, enabled=cast is not None):
        for _ in range(iters):
            start = time.perf_counter()
            model.forward_encoder(encoder_imgs, mask_ratio)
            if device == 'cuda':
                torch.cuda.synchronize()
            encoder_times.append(time.perf_counter() - start)
    if master is not None:
        master.restore()
    gemm_gflop = mae_step_gemm_flops(model, mask_ratio)['total'] / 1e9  # per image
    bound_img_per_s = matmul_flops_per_s(GEMM_DTYPES[dtype], size=bound_size, repeats=bound_repeats,
                                         allocations=min(3, bound_repeats), device=device) / 1e9 / gemm_gflop
    # the step's own products alone, at their shapes: the closest the step can come to the bound
    gemm_s = time_gemms(mae_step_gemms(model, mask_ratio, images=batch), GEMM_DTYPES[dtype],
                        repeats=min(5, bound_repeats), device=device)
    peak = peak_tflops_for(torch.cuda.get_device_name()) if device == 'cuda' else None
    mfu = (model_flops_utilisation(batch * gemm_gflop * 1e9, step_s, peak[0])
           if peak is not None and GEMM_DTYPES[dtype] == torch.bfloat16 else None)
    return dict(arch=arch, batch=batch, img_size=img_size, mask_ratio=mask_ratio, dtype=dtype, device=device,
                threads=torch.get_num_threads(), step_s=step_s, img_per_s=batch / step_s,
                gemm_gflop_per_img=gemm_gflop, bound_img_per_s=bound_img_per_s,
                of_bound=batch / step_s / bound_img_per_s, gemm_s=gemm_s,
                ceiling=batch / gemm_s / bound_img_per_s, mfu=mfu, peak_label=peak[1] if peak else None,
                first_step_s=first_step_s, compile=compile_backend or 'no',
                encoder_fwd_ms=1000 * median(encoder_times), peak_mem_mib=peak_memory_mib(device),
                params_m=sum(p.numel() for p in model.parameters()) / 1e6)


def add_shared_arguments(parser: argparse.ArgumentParser, batch_help: str, size_help: str, iters_help: str,
                         warmup_help: str) -> None:
    """The options that the pretrain and backbone benchmarks share."""
    parser.add_argument('--arch', default='base')
    parser.add_argument('--batch', type=int, default=None, help=batch_help)
    parser.add_argument('--img-size', type=int, default=None, help=size_help)
    parser.add_argument('--iters', type=int, default=None, help=iters_help)
    parser.add_argument('--warmup', type=int, default=None, help=warmup_help)
    parser.add_argument('--threads', type=int, default=0, help='torch threads (default: torch decides)')
    parser.add_argument('--profile', action='store_true', help='print the top ops of one step to stderr')


def main(argv: Optional[List[str]] = None) -> None:
    from mae_transfer.tools.benchmark import child_command
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_shared_arguments(parser, 'images per step (8)', 'input side (224)', 'measured steps (5)',
                         'unmeasured steps first (2)')
    parser.add_argument('--mask-ratios', type=float, nargs='+', default=[0.75])
    parser.add_argument('--dtypes', nargs='+', choices=sorted(DTYPES), default=['fp32', 'bf16'])
    parser.add_argument('--compile', nargs='?', const='inductor', default=None, metavar='BACKEND',
                        help='torch.compile the MAE first (as tools/train.py --compile); the first step, '
                             'compilation included, is printed')
    parser.add_argument('--bound-size', type=int, default=2048, help="the bound's square matmul side (2048)")
    parser.add_argument('--bound-repeats', type=int, default=8, help="timed products per bound matmul (8)")
    parser.add_argument('--single', action='store_true', help=argparse.SUPPRESS)  # the fresh child process
    args = parser.parse_args(argv)
    batch, img_size = args.batch or 8, args.img_size or 224
    iters, warmup = args.iters or 5, 2 if args.warmup is None else args.warmup

    if args.single:
        print(json.dumps(measure(args.arch, batch, img_size, args.mask_ratios[0], args.dtypes[0], iters, warmup,
                                 args.threads, args.profile, args.compile, args.bound_size,
                                 args.bound_repeats)))
        return
    print(f'MAE pretraining step (fwd + bwd + AdamW), {args.arch}, batch {batch}, {img_size}px; '
          f'median of {iters} steps after {warmup} warm-up')
    print(f'{"mask":>5} {"dtype":>11} {"img/s":>8} {"s/step":>8} {"first s":>8} {"enc fwd ms":>10} '
          f'{"peak MiB":>9} {"GFLOP/img":>9} {"bound":>8} {"of bound":>8} {"GEMM s":>7} {"ceiling":>7}  '
          f'device  (compile: {args.compile or "no"})')
    for mask_ratio in args.mask_ratios:
        for dtype in args.dtypes:
            command = [*child_command('pretrain'), '--single', '--arch', args.arch, '--batch', str(batch),
                       '--img-size', str(img_size), '--mask-ratios', str(mask_ratio), '--dtypes', dtype,
                       '--iters', str(iters), '--warmup', str(warmup), '--threads', str(args.threads),
                       '--bound-size', str(args.bound_size), '--bound-repeats', str(args.bound_repeats)]
            command += ['--compile', args.compile] if args.compile else []
            r = run_in_fresh_process(command + (['--profile'] if args.profile else []), show_stderr=True)
            print(f'{mask_ratio:>5.2f} {dtype:>11} {r["img_per_s"]:>8.2f} {r["step_s"]:>8.3f} '
                  f'{r["first_step_s"]:>8.2f} {r["encoder_fwd_ms"]:>10.0f} {r["peak_mem_mib"]:>9.0f} '
                  f'{r["gemm_gflop_per_img"]:>9.1f} {r["bound_img_per_s"]:>8.2f} {r["of_bound"]:>8.0%} '
                  f'{r["gemm_s"]:>7.3f} {r["ceiling"]:>7.0%}  '
                  f'{r["device"]} ({r["threads"]} threads)', flush=True)
            if r.get('mfu') is not None:
                print(f'      bf16 MFU {100 * r["mfu"]:.1f} % of the {r["peak_label"]} dense bf16 peak', flush=True)
    print('bound: img/s if every GEMM of the step (GFLOP/img: patch embed, encoder on visible tokens, decoder on '
          'all, x3 for forward + backward) ran at the speed of the fastest 2048^3 matmul measured here in its '
          'dtype (8 on each of 3 operand allocations). GEMM s: the step\'s products timed alone at their own '
          'shapes; ceiling: the share of the bound they reach, which is as close as the step can come by removing '
          'non-GEMM work (LayerNorm, GELU, softmax, copies, the optimizer)')
