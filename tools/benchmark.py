#!/usr/bin/env python
"""Measure MAE pretraining speed: images/s of one forward + backward + AdamW step, and peak memory.

Also the encoder's forward time alone, which shrinks with the mask ratio (it sees only the visible patches).

    python tools/benchmark.py pretrain                       # ViT-B/16, batch 8, 224, mask 0.75, fp32 and bf16
    python tools/benchmark.py pretrain --arch large --batch 4 --mask-ratios 0.0 0.75 --dtypes fp32
    python tools/benchmark.py pretrain --profile             # where the time goes (top ops)

Each measurement runs in a fresh process so that its peak memory is its own (CPU: peak RSS; GPU: peak
allocated). Numbers are printed, never asserted: machines are shared and noisy.
"""
import argparse
import json
import resource
import subprocess
import sys
import time

import torch

DTYPES = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def measure(arch: str, batch: int, img_size: int, mask_ratio: float, dtype: str, iters: int, warmup: int,
            threads: int, profile: bool) -> dict:
    from mae_transfer.models import MAE_ARCHS
    if threads:
        torch.set_num_threads(threads)
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    torch.manual_seed(0)
    model = MAE_ARCHS[arch](img_size=img_size, norm_pix_loss=True).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05, fused=True)
    imgs = torch.randn(batch, 3, img_size, img_size, device=device)
    cast = DTYPES[dtype]

    def step() -> None:
        with torch.autocast(device_type=device, dtype=cast, enabled=cast is not None):
            loss = model(imgs, mask_ratio=mask_ratio)[0]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    if device == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    if profile:
        from torch.profiler import ProfilerActivity, profile as torch_profile
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == 'cuda' else [])
        with torch_profile(activities=activities) as prof:
            step()
        print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=25), file=sys.stderr)
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        if device == 'cuda':
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    median = sorted(times)[len(times) // 2]
    encoder_times = []  # the encoder alone, forward only: what masking saves
    with torch.no_grad(), torch.autocast(device_type=device, dtype=cast, enabled=cast is not None):
        for _ in range(iters):
            start = time.perf_counter()
            model.forward_encoder(imgs, mask_ratio)
            if device == 'cuda':
                torch.cuda.synchronize()
            encoder_times.append(time.perf_counter() - start)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device == 'cuda'
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # ru_maxrss is KiB on Linux
    return dict(arch=arch, batch=batch, img_size=img_size, mask_ratio=mask_ratio, dtype=dtype, device=device,
                threads=torch.get_num_threads(), step_s=median, img_per_s=batch / median,
                encoder_fwd_ms=1000 * sorted(encoder_times)[len(encoder_times) // 2],
                peak_mem_mib=peak, params_m=sum(p.numel() for p in model.parameters()) / 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('mode', choices=['pretrain'])
    parser.add_argument('--arch', default='base')
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--mask-ratios', type=float, nargs='+', default=[0.75])
    parser.add_argument('--dtypes', nargs='+', choices=sorted(DTYPES), default=['fp32', 'bf16'])
    parser.add_argument('--iters', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=0, help='torch threads (default: torch decides)')
    parser.add_argument('--profile', action='store_true', help='print the top ops of one step to stderr')
    parser.add_argument('--single', action='store_true', help=argparse.SUPPRESS)  # one measurement, JSON out
    args = parser.parse_args()

    if args.single:
        result = measure(args.arch, args.batch, args.img_size, args.mask_ratios[0], args.dtypes[0], args.iters,
                         args.warmup, args.threads, args.profile)
        print(json.dumps(result))
        return

    print(f'MAE pretraining step (fwd + bwd + AdamW), {args.arch}, batch {args.batch}, {args.img_size}px; '
          f'median of {args.iters} steps after {args.warmup} warm-up')
    print(f'{"mask":>5} {"dtype":>5} {"img/s":>8} {"s/step":>8} {"enc fwd ms":>10} {"peak MiB":>9}  device')
    for mask_ratio in args.mask_ratios:
        for dtype in args.dtypes:
            command = [sys.executable, __file__, 'pretrain', '--single', '--arch', args.arch, '--batch',
                       str(args.batch), '--img-size', str(args.img_size), '--mask-ratios', str(mask_ratio),
                       '--dtypes', dtype, '--iters', str(args.iters), '--warmup', str(args.warmup),
                       '--threads', str(args.threads)] + (['--profile'] if args.profile else [])
            out = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(f'{mask_ratio:>5.2f} {dtype:>5} {r["img_per_s"]:>8.2f} {r["step_s"]:>8.3f} {r["encoder_fwd_ms"]:>10.0f} '
                  f'{r["peak_mem_mib"]:>9.0f}  {r["device"]} ({r["threads"]} threads)', flush=True)


if __name__ == '__main__':
    main()
