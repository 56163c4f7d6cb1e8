#!/usr/bin/env python
"""Segmentation benchmarks: does the tiny UperNet twin learn (`tiny`), and what does the full recipe cost (`full`).

tiny: writes the synthetic ADE20K-layout set, evaluates the untrained model (the exact weights training starts
from), trains the tiny config, evaluates again and prints mIoU / mAcc / aAcc before and after, with the wall
and CPU seconds per training iteration.

    python tools/benchmark_seg.py tiny                                   # the config's 200 iterations, random init
    python tools/benchmark_seg.py tiny --pretrained work_dirs/demo/pretrain/epoch_50.pth --iters 200

full: parameters, and the time and peak memory of one training forward + backward (losses of both heads) of a
full-size config at its crop size (ViT-B: 512 x 512, batch 2 as on each of the 8 GPUs), in a fresh process so
the peak RSS is its own (GPU: peak allocated).

    python tools/benchmark_seg.py full                                   # ViT-B, fp32, batch 2
    python tools/benchmark_seg.py full --config configs/seg/upernet_vit-l-mae_8xb2-160k_ade20k-512x512.py --amp

Numbers are printed, never asserted: machines are shared and noisy.
"""
import argparse
import json
import os.path as osp
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import torch

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = ROOT / 'configs' / 'seg' / 'upernet_vit-tiny-mae_1xb8-200i_synthetic-128x128.py'
FULL_CONFIG = ROOT / 'configs' / 'seg' / 'upernet_vit-b-mae_8xb2-160k_ade20k-512x512.py'
METRIC_KEYS = ('mIoU', 'mAcc', 'aAcc')


def tiny_learning_check(config: str = str(TINY_CONFIG), data_root: Optional[str] = None, work_dir: Optional[str] = None,
                        iters: Optional[int] = None, pretrained: Optional[str] = None, seed: int = 0) -> dict:
    """Evaluate the untrained tiny model, train it, evaluate again; returns metrics and timings.

    Args:
        config: the tiny segmentation config.
        data_root: where the synthetic set is (written there if missing); the config's data_root by default.
        work_dir: logs and checkpoints; a temporary folder by default.
        iters: training iterations; the config's by default.
        pretrained: backbone checkpoint (e.g. the demo's tiny MAE); random initialisation when left out.
        seed: randomness seed of the run.
    """
    from mmengine.config import Config
    from mmengine.runner import Runner

    import mae_transfer  # noqa: F401  (registries, checkpoint allowlist)
    from mae_transfer.datasets.synthetic_ade import generate_ade_dataset
    from mae_transfer.utils.configs import set_pretrained

    cfg = Config.fromfile(config)
    data_root = data_root or cfg.train_dataloader.dataset.data_root
    if not (Path(data_root) / 'images' / 'training').is_dir():
        generate_ade_dataset(data_root)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = str(data_root)
    set_pretrained(cfg, pretrained)
    iters = iters or cfg.train_cfg.max_iters
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = cfg.train_cfg.val_begin = iters + 1  # evaluate outside the timed training
    cfg.default_hooks.checkpoint.interval = iters
    cfg.randomness = dict(seed=seed)
    cfg.work_dir = work_dir or tempfile.mkdtemp(prefix='benchmark_seg_')

    runner = Runner.from_cfg(cfg)
    runner.model.init_weights()  # the weights training starts from (train() does not initialise twice)
    before = runner.test()
    wall, cpu = time.perf_counter(), time.process_time()
    runner.train()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after = runner.test()
    return dict(config=osp.relpath(config, ROOT), pretrained=pretrained or 'none (random)', iters=iters,
                batch=cfg.train_dataloader.batch_size, before={k: float(before[k]) for k in METRIC_KEYS},
                after={k: float(after[k]) for k in METRIC_KEYS}, s_per_iter=wall / iters,
                cpu_s_per_iter=cpu / iters, threads=torch.get_num_threads(), work_dir=cfg.work_dir)


def full_step(config: str = str(FULL_CONFIG), batch: int = 2, amp: bool = False, steps: int = 1) -> dict:
    """Build a full-size config's segmentor and time `steps` training forward + backward passes at its crop.

    Run it in a fresh process (`main` does) so that the peak RSS is this measurement's.
    """
    from mmengine.config import Config
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from mae_transfer.utils.configs import build_model

    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None  # random weights: same cost, no checkpoint needed
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    torch.manual_seed(0)
    model = build_model(cfg).to(device).train()
    height, width = cfg.model.data_preprocessor['size']
    num_classes = cfg.model.decode_head.num_classes
    inputs = torch.randn(batch, 3, height, width, device=device)  # what the data preprocessor hands over
    samples = []
    for _ in range(batch):
        sample = SegDataSample(metainfo=dict(img_shape=(height, width), pad_shape=(height, width),
                                             ori_shape=(height, width)))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, height, width), device=device))
        samples.append(sample)
    before_step_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # ru_maxrss is KiB on Linux

    times = []
    for _ in range(steps):
        if device == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=amp):
            losses = model.loss(inputs, samples)
        loss = sum(value for key, value in losses.items() if 'loss' in key)
        loss.backward()
        if device == 'cuda':
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        model.zero_grad(set_to_none=True)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device == 'cuda'
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return dict(config=osp.relpath(config, ROOT), batch=batch, crop=(height, width), amp=amp, device=device,
                threads=torch.get_num_threads(), params_m=sum(p.numel() for p in model.parameters()) / 1e6,
                backbone_params_m=sum(p.numel() for p in model.backbone.parameters()) / 1e6,
                step_s=times, peak_mem_mib=peak, before_step_mem_mib=before_step_mib)


def print_tiny(result: dict) -> None:
    print(f'tiny twin {result["config"]} (pretrained: {result["pretrained"]}), {result["iters"]} iterations of '
          f'batch {result["batch"]}, {result["threads"]} torch threads')
    print(f'{"":>10} ' + ' '.join(f'{key:>7}' for key in METRIC_KEYS))
    for name in ('before', 'after'):
        print(f'{name:>10} ' + ' '.join(f'{result[name][key]:>7.2f}' for key in METRIC_KEYS))
    print(f'training: {result["s_per_iter"]:.3f} s/iter wall, {result["cpu_s_per_iter"]:.3f} s/iter CPU of the '
          f'main process; logs in {result["work_dir"]}')


def print_full(result: dict) -> None:
    print(f'{result["config"]}: {result["params_m"]:.1f} M parameters ({result["backbone_params_m"]:.1f} M backbone)')
    print(f'one training forward + backward, batch {result["batch"]}, {result["crop"][0]}x{result["crop"][1]}, '
          f'{"bf16 autocast" if result["amp"] else "fp32"}, {result["device"]} ({result["threads"]} threads): '
          + ', '.join(f'{t:.1f} s' for t in result['step_s'])
          + f'; peak {result["peak_mem_mib"] / 1024:.2f} GB '
          f'(after building: {result["before_step_mem_mib"] / 1024:.2f} GB)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('mode', choices=['tiny', 'full'])
    parser.add_argument('--config', default=None, help='tiny: the tiny config; full: the ViT-B recipe')
    parser.add_argument('--data-root', default=None, help='tiny: synthetic set (written if missing)')
    parser.add_argument('--work-dir', default=None)
    parser.add_argument('--iters', type=int, default=None, help="tiny: training iterations (the config's)")
    parser.add_argument('--pretrained', default=None, help='tiny: backbone checkpoint (default: random)')
    parser.add_argument('--batch', type=int, default=2, help='full: images per step')
    parser.add_argument('--steps', type=int, default=1, help='full: forward + backward passes to time')
    parser.add_argument('--amp', action='store_true', help='full: bf16 autocast')
    parser.add_argument('--threads', type=int, default=0, help='torch threads (default: torch decides)')
    parser.add_argument('--single', action='store_true', help=argparse.SUPPRESS)  # the fresh child process
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.mode == 'tiny':
        print_tiny(tiny_learning_check(args.config or str(TINY_CONFIG), args.data_root, args.work_dir, args.iters,
                                       args.pretrained))
        return
    config = args.config or str(FULL_CONFIG)
    if args.single:
        print(json.dumps(full_step(config, args.batch, args.amp, args.steps)))
        return
    command = [sys.executable, __file__, 'full', '--single', '--config', config, '--batch', str(args.batch),
               '--steps', str(args.steps), '--threads', str(args.threads)] + (['--amp'] if args.amp else [])
    out = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout
    print_full(json.loads(out.strip().splitlines()[-1]))


if __name__ == '__main__':
    main()
