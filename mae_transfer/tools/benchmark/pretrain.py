"""MAE pretraining benchmark: images/s of one forward + backward + AdamW step, and the encoder's forward time
alone, which shrinks with the mask ratio (it sees only the visible patches).

    python tools/benchmark.py pretrain                       # ViT-B/16, batch 8, 224, mask 0.75, fp32 and bf16
    python tools/benchmark.py pretrain --arch large --batch 4 --mask-ratios 0.0 0.75 --dtypes fp32
    python tools/benchmark.py pretrain --profile             # where the time goes (top ops)

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

DTYPES = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def measure(arch: str, batch: int, img_size: int, mask_ratio: float, dtype: str, iters: int, warmup: int,
            threads: int, profile: bool, compile_backend: Optional[str] = None) -> dict:
    """One pretraining measurement in this process (`main` runs each in a fresh one)."""
    from mae_transfer.models import MAE_FACTORIES
    if threads:
        torch.set_num_threads(threads)
    device = default_device()
    torch.manual_seed(0)
    model = MAE_FACTORIES[arch](img_size=img_size, norm_pix_loss=True).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05, fused=True)
    imgs = torch.randn(batch, 3, img_size, img_size, device=device)
    cast = DTYPES[dtype]

    def steps(count: int) -> dict:
        return time_training_steps(model, lambda: model(imgs, mask_ratio=mask_ratio)[0], count, device=device,
                                   optimizer=optimizer, dtype=cast)

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
    with torch.no_grad(), torch.autocast(device_type=device, dtype=cast or torch.bfloat16, enabled=cast is not None):
        for _ in range(iters):
            start = time.perf_counter()
            model.forward_encoder(imgs, mask_ratio)
            if device == 'cuda':
                torch.cuda.synchronize()
            encoder_times.append(time.perf_counter() - start)
    return dict(arch=arch, batch=batch, img_size=img_size, mask_ratio=mask_ratio, dtype=dtype, device=device,
                threads=torch.get_num_threads(), step_s=step_s, img_per_s=batch / step_s,
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
    parser.add_argument('--single', action='store_true', help=argparse.SUPPRESS)  # the fresh child process
    args = parser.parse_args(argv)
    batch, img_size = args.batch or 8, args.img_size or 224
    iters, warmup = args.iters or 5, 2 if args.warmup is None else args.warmup

    if args.single:
        print(json.dumps(measure(args.arch, batch, img_size, args.mask_ratios[0], args.dtypes[0], iters, warmup,
                                 args.threads, args.profile, args.compile)))
        return
    print(f'MAE pretraining step (fwd + bwd + AdamW), {args.arch}, batch {batch}, {img_size}px; '
          f'median of {iters} steps after {warmup} warm-up')
    print(f'{"mask":>5} {"dtype":>5} {"img/s":>8} {"s/step":>8} {"first s":>8} {"enc fwd ms":>10} '
          f'{"peak MiB":>9}  device  (compile: {args.compile or "no"})')
    for mask_ratio in args.mask_ratios:
        for dtype in args.dtypes:
            command = [*child_command('pretrain'), '--single', '--arch', args.arch, '--batch', str(batch),
                       '--img-size', str(img_size), '--mask-ratios', str(mask_ratio), '--dtypes', dtype,
                       '--iters', str(iters), '--warmup', str(warmup), '--threads', str(args.threads)]
            command += ['--compile', args.compile] if args.compile else []
            r = run_in_fresh_process(command + (['--profile'] if args.profile else []), show_stderr=True)
            print(f'{mask_ratio:>5.2f} {dtype:>5} {r["img_per_s"]:>8.2f} {r["step_s"]:>8.3f} '
                  f'{r["first_step_s"]:>8.2f} {r["encoder_fwd_ms"]:>10.0f} '
                  f'{r["peak_mem_mib"]:>9.0f}  {r["device"]} ({r["threads"]} threads)', flush=True)
