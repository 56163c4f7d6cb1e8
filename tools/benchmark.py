#!/usr/bin/env python
"""Measure speed and peak memory: MAE pretraining steps (`pretrain`) and the transfer backbone (`backbone`).

pretrain: images/s of one forward + backward + AdamW step, and the encoder's forward time alone, which
shrinks with the mask ratio (it sees only the visible patches).

    python tools/benchmark.py pretrain                       # ViT-B/16, batch 8, 224, mask 0.75, fp32 and bf16
    python tools/benchmark.py pretrain --arch large --batch 4 --mask-ratios 0.0 0.75 --dtypes fp32
    python tools/benchmark.py pretrain --profile             # where the time goes (top ops)

backbone: forward + backward of `MAEViT` (fp32, drop path 0.1 as in the recipes) in the downstream settings,
each with and without activation checkpointing (`with_cp`):
vitdet-global (1024 px, batch 1, global attention in every block, rel-pos), vitdet-window (1024 px, batch 1,
window 14 + global blocks 2, 5, 8, 11 for ViT-B, rel-pos) and upernet (512 px, batch 2, out_indices 3, 5, 7, 11,
global, cls token, no rel-pos); on request vitdet-global-abs (as vitdet-global without rel-pos).

    python tools/benchmark.py backbone                       # ViT-B, the three settings, with_cp off and on
    python tools/benchmark.py backbone --settings vitdet-window --cp off
    python tools/benchmark.py backbone --arch tiny --img-size 64 --batch 1 --global-attn-indexes 1 --out-indices 1 3

Each measurement runs in a fresh process so that its peak memory is its own (CPU: peak RSS; GPU: peak
allocated). Numbers are printed, never asserted: machines are shared and noisy.
"""
import argparse
import json
import sys
import time
from typing import List, Tuple

import torch

from mae_transfer.utils.benchmarking import peak_memory_mib, run_in_fresh_process

DTYPES = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def measure(arch: str, batch: int, img_size: int, mask_ratio: float, dtype: str, iters: int, warmup: int,
            threads: int, profile: bool) -> dict:
    from mae_transfer.models import MAE_FACTORIES
    if threads:
        torch.set_num_threads(threads)
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    torch.manual_seed(0)
    model = MAE_FACTORIES[arch](img_size=img_size, norm_pix_loss=True).to(device)
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
    peak = peak_memory_mib(device)
    return dict(arch=arch, batch=batch, img_size=img_size, mask_ratio=mask_ratio, dtype=dtype, device=device,
                threads=torch.get_num_threads(), step_s=median, img_per_s=batch / median,
                encoder_fwd_ms=1000 * sorted(encoder_times)[len(encoder_times) // 2],
                peak_mem_mib=peak, params_m=sum(p.numel() for p in model.parameters()) / 1e6)


BACKBONE_SETTINGS = {
    # img_size and batch of each setting; the attention layout follows the recipes (ViTDet / mmseg MAE)
    'vitdet-global': dict(img_size=1024, batch=1, window_size=0, use_rel_pos=True, pyramid=False),
    'vitdet-window': dict(img_size=1024, batch=1, window_size=14, use_rel_pos=True, pyramid=False),
    'upernet': dict(img_size=512, batch=2, window_size=0, use_rel_pos=False, pyramid=True),
    # not run by default: all-global ViTDet without rel-pos, to see what the rel-pos bias costs
    'vitdet-global-abs': dict(img_size=1024, batch=1, window_size=0, use_rel_pos=False, pyramid=False),
}
DEFAULT_BACKBONE_SETTINGS = ['vitdet-global', 'vitdet-window', 'upernet']


def vitdet_global_blocks(depth: int) -> List[int]:
    """ViTDet's global blocks: the last of each quarter (B: 2, 5, 8, 11; L: 5, 11, 17, 23; H: 7, 15, 23, 31)."""
    return [(k + 1) * depth // 4 - 1 for k in range(4)]


def backbone_spec(setting: str, with_cp: bool, args: argparse.Namespace) -> dict:
    """The MAEViT options and input of one measurement, from the setting and the command-line overrides."""
    from mae_transfer.models import get_arch
    base = BACKBONE_SETTINGS[setting]
    depth = get_arch(args.arch).depth
    img_size = args.img_size or base['img_size']
    global_blocks = args.global_attn_indexes if args.global_attn_indexes is not None else vitdet_global_blocks(depth)
    options = dict(arch=args.arch, img_size=224, drop_path_rate=args.drop_path, with_cp=with_cp,
                   window_size=args.window_size if base['window_size'] else 0, use_rel_pos=base['use_rel_pos'],
                   out_indices=list(args.out_indices) if base['pyramid'] else [-1], rel_pos_impl=args.rel_pos_impl)
    if options['window_size']:
        options['global_attn_indexes'] = list(global_blocks)
    if options['use_rel_pos']:
        options['rel_pos_img_size'] = img_size  # ViTDet sizes the global tables for the fine-tuning input
    return dict(setting=setting, batch=args.batch or base['batch'], img_size=img_size, options=options)


def measure_backbone(spec: dict, iters: int, warmup: int, threads: int, profile: bool) -> dict:
    """Forward + backward of MAEViT on random images; times are medians, memory the process peak."""
    from mae_transfer.models import MAEViT
    if threads:
        torch.set_num_threads(threads)
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    torch.manual_seed(0)
    model = MAEViT(**spec['options']).to(device).train()
    imgs = torch.randn(spec['batch'], 3, spec['img_size'], spec['img_size'], device=device)
    before_step_mem = peak_memory_mib(device)

    def sync() -> None:
        if device == 'cuda':
            torch.cuda.synchronize()

    def step() -> Tuple[float, float]:
        start = time.perf_counter()
        outs = model(imgs)
        sync()
        middle = time.perf_counter()
        sum(out.float().square().mean() for out in outs).backward()
        sync()
        model.zero_grad(set_to_none=True)
        return middle - start, time.perf_counter() - middle

    for _ in range(warmup):
        step()
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    if profile:
        from torch.profiler import ProfilerActivity, profile as torch_profile
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=25), file=sys.stderr)
    times = sorted((step() for _ in range(iters)), key=sum)
    fwd, bwd = times[len(times) // 2]
    peak = peak_memory_mib(device)
    return dict(spec, device=device, threads=torch.get_num_threads(), fwd_s=fwd, bwd_s=bwd, step_s=fwd + bwd,
                peak_mem_mib=peak, before_step_mem_mib=before_step_mem,
                params_m=sum(p.numel() for p in model.parameters()) / 1e6)


def run_backbone(args: argparse.Namespace) -> None:
    """One fresh process per measurement, so that each peak RSS is its own."""
    specs = [backbone_spec(setting, cp == 'on', args) for setting in args.settings for cp in args.cp]
    if args.list:
        for spec in specs:
            print(json.dumps(spec))
        return
    print(f'MAEViT forward + backward, {args.arch}, fp32, drop path {args.drop_path}; median of {args.iters} '
          f'steps after {args.warmup} warm-up; peak = peak RSS of a fresh process (GPU: peak allocated)')
    print(f'{"setting":>14} {"batch":>5} {"px":>5} {"cp":>3} {"fwd s":>7} {"bwd s":>7} {"total s":>8} '
          f'{"peak GB":>8} {"before GB":>9}  device')
    for spec in specs:
        command = [__file__, 'backbone', '--single', json.dumps(spec), '--iters', str(args.iters),
                   '--warmup', str(args.warmup), '--threads', str(args.threads)]
        command += ['--profile'] if args.profile else []
        r = run_in_fresh_process(command, show_stderr=True)  # stderr: the profile
        print(f'{r["setting"]:>14} {r["batch"]:>5} {r["img_size"]:>5} {"on" if r["options"]["with_cp"] else "off":>3} '
              f'{r["fwd_s"]:>7.2f} {r["bwd_s"]:>7.2f} {r["step_s"]:>8.2f} {r["peak_mem_mib"] / 1024:>8.2f} '
              f'{r["before_step_mem_mib"] / 1024:>9.2f}  {r["device"]} ({r["threads"]} threads)', flush=True)


def run_pretrain(args: argparse.Namespace) -> None:
    batch, img_size = args.batch or 8, args.img_size or 224
    print(f'MAE pretraining step (fwd + bwd + AdamW), {args.arch}, batch {batch}, {img_size}px; '
          f'median of {args.iters} steps after {args.warmup} warm-up')
    print(f'{"mask":>5} {"dtype":>5} {"img/s":>8} {"s/step":>8} {"enc fwd ms":>10} {"peak MiB":>9}  device')
    for mask_ratio in args.mask_ratios:
        for dtype in args.dtypes:
            command = [__file__, 'pretrain', '--single', '--arch', args.arch, '--batch',
                       str(batch), '--img-size', str(img_size), '--mask-ratios', str(mask_ratio),
                       '--dtypes', dtype, '--iters', str(args.iters), '--warmup', str(args.warmup),
                       '--threads', str(args.threads)] + (['--profile'] if args.profile else [])
            r = run_in_fresh_process(command, show_stderr=True)  # stderr: the profile
            print(f'{mask_ratio:>5.2f} {dtype:>5} {r["img_per_s"]:>8.2f} {r["step_s"]:>8.3f} '
                  f'{r["encoder_fwd_ms"]:>10.0f} '
                  f'{r["peak_mem_mib"]:>9.0f}  {r["device"]} ({r["threads"]} threads)', flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('mode', choices=['pretrain', 'backbone'])
    parser.add_argument('--arch', default='base')
    parser.add_argument('--batch', type=int, default=None, help='pretrain: 8; backbone: per setting (1, 1, 2)')
    parser.add_argument('--img-size', type=int, default=None, help='pretrain: 224; backbone: per setting')
    parser.add_argument('--iters', type=int, default=None, help='measured steps (pretrain: 5, backbone: 1)')
    parser.add_argument('--warmup', type=int, default=None, help='unmeasured steps first (pretrain: 2, backbone: 0)')
    parser.add_argument('--threads', type=int, default=0, help='torch threads (default: torch decides)')
    parser.add_argument('--profile', action='store_true', help='print the top ops of one step to stderr')
    pretrain = parser.add_argument_group('pretrain')
    pretrain.add_argument('--mask-ratios', type=float, nargs='+', default=[0.75])
    pretrain.add_argument('--dtypes', nargs='+', choices=sorted(DTYPES), default=['fp32', 'bf16'])
    backbone = parser.add_argument_group('backbone')
    backbone.add_argument('--settings', nargs='+', choices=list(BACKBONE_SETTINGS), default=DEFAULT_BACKBONE_SETTINGS)
    backbone.add_argument('--cp', nargs='+', choices=['off', 'on'], default=['off', 'on'],
                          help='activation checkpointing (with_cp) off and/or on')
    backbone.add_argument('--window-size', type=int, default=14)
    backbone.add_argument('--global-attn-indexes', type=int, nargs='*', default=None,
                          help="vitdet-window's global blocks (default: the last block of each quarter)")
    backbone.add_argument('--out-indices', type=int, nargs='+', default=[3, 5, 7, 11], help="upernet's outputs")
    backbone.add_argument('--drop-path', type=float, default=0.1)
    backbone.add_argument('--rel-pos-impl', choices=['fold', 'mask'], default='fold')
    backbone.add_argument('--list', action='store_true', help='print the measurements as JSON, run nothing')
    parser.add_argument('--single', nargs='?', const='', default=None, help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    backbone_mode = args.mode == 'backbone'
    args.iters = args.iters or (1 if backbone_mode else 5)
    args.warmup = args.warmup if args.warmup is not None else (0 if backbone_mode else 2)

    if args.single is not None:
        if backbone_mode:
            result = measure_backbone(json.loads(args.single), args.iters, args.warmup, args.threads, args.profile)
        else:
            result = measure(args.arch, args.batch or 8, args.img_size or 224, args.mask_ratios[0], args.dtypes[0],
                             args.iters, args.warmup, args.threads, args.profile)
        print(json.dumps(result))
        return
    if backbone_mode:
        run_backbone(args)
    else:
        run_pretrain(args)


if __name__ == '__main__':
    main()
