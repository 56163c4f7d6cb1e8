#!/usr/bin/env python
"""Pose benchmarks (printed, not asserted).

    python tools/benchmark_pose.py tiny                  # synthetic set, untrained AP, train, trained AP, s/iter
    python tools/benchmark_pose.py tiny --pretrained work_dirs/demo/pretrain/epoch_50.pth
    python tools/benchmark_pose.py full                  # ViT-B 256x192: params, img/s, fwd+bwd time, peak RSS
    python tools/benchmark_pose.py full --config configs/pose/heatmap_vit-large-p16_8xb64-210e_coco-256x192.py

Each measurement is one plain function (`tiny_learning_check`, `full_model_cost`), so tools/benchmark.py can
call them. The full-size measurement runs in a fresh process, so its peak RSS is the model's own.
"""
import argparse
import json
import os
import os.path as osp
import time
from typing import Dict, Optional

import torch

from mae_transfer.utils.benchmarking import (add_common_arguments, build_random_model, learning_check,
                                             parameter_counts, run_in_fresh_process, time_training_steps)

TINY_CONFIG = 'configs/pose/heatmap_vit-tiny-p16_1xb32-300i_synthetic-128x96.py'
FULL_CONFIG = 'configs/pose/heatmap_vit-base-p16_8xb64-210e_coco-256x192.py'


def tiny_learning_check(config: str = TINY_CONFIG, data_root: str = 'data/synthetic_pose',
                        work_dir: str = 'work_dirs/benchmark_pose_tiny', iters: Optional[int] = None,
                        pretrained: Optional[str] = None, seed: int = 0) -> Dict[str, float]:
    """Generate the synthetic set (if missing), evaluate the untrained model, train, evaluate again.

    Returns dict(untrained_ap, trained_ap, untrained_ap50, trained_ap50, seconds_per_iter, train_seconds, iters).
    """
    from mmengine.config import Config

    from mae_transfer.datasets import generate_pose_dataset

    if not osp.isfile(osp.join(data_root, 'annotations', 'person_keypoints_val.json')):
        generate_pose_dataset(data_root, seed=seed)
    cfg = Config.fromfile(config)
    root = data_root.rstrip('/') + '/'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = root
    for evaluator in ('val_evaluator', 'test_evaluator'):
        cfg[evaluator].ann_file = root + 'annotations/person_keypoints_val.json'
    # the pretrained backbone (if any) counts as "untrained" for the pose task
    result = learning_check(cfg, dict(ap='coco/AP', ap50='coco/AP .5'), iters, pretrained, seed, work_dir)
    return dict(untrained_ap=result['before']['ap'], trained_ap=result['after']['ap'],
                untrained_ap50=result['before']['ap50'], trained_ap50=result['after']['ap50'],
                seconds_per_iter=result['s_per_iter'], train_seconds=result['train_s'], iters=result['iters'])


def _measure_in_this_process(config: str, batch: int, steps: int, forward_batch: int,
                             amp: bool = False) -> Dict[str, float]:
    cfg, model = build_random_model(config)  # on the CPU
    width, height = cfg.codec['input_size']
    heat_w, heat_h = cfg.codec['heatmap_size']

    model.eval()
    x = torch.randn(forward_batch, 3, height, width)
    with torch.no_grad(), torch.autocast(device_type='cpu', dtype=torch.bfloat16, enabled=amp):
        model(x, mode='tensor')  # warm-up
        start = time.perf_counter()
        for _ in range(steps):
            model(x, mode='tensor')
        forward_seconds = (time.perf_counter() - start) / steps

    model.train()
    x = torch.randn(batch, 3, height, width)
    target = torch.rand(batch, 17, heat_h, heat_w)
    weights = torch.ones(batch, 17)
    cost = time_training_steps(model, lambda: model.loss_module(model(x, mode='tensor'), target, weights),
                               steps + 1, amp)
    times = cost['step_s'][1:]
    train_seconds = sorted(times)[len(times) // 2]  # median after a warm-up step
    return dict(params_m=parameter_counts(model)['params_m'], input=f'{height}x{width}', forward_batch=forward_batch,
                forward_img_per_s=forward_batch / forward_seconds, train_batch=batch,
                train_step_seconds=train_seconds, train_img_per_s=batch / train_seconds,
                peak_rss_gb=cost['peak_mem_mib'] / 1024, threads=torch.get_num_threads(), amp=amp)


def full_model_cost(config: str = FULL_CONFIG, batch: int = 4, steps: int = 3, forward_batch: int = 8,
                    amp: bool = False, threads: int = 0) -> Dict[str, float]:
    """Parameters, forward img/s (no flip test), fwd+bwd seconds at `batch`, peak RSS: in a fresh process."""
    return run_in_fresh_process([__file__, 'full', '--single', '--config', config, '--batch', str(batch),
                                 '--steps', str(steps), '--forward-batch', str(forward_batch),
                                 '--threads', str(threads)] + (['--amp'] if amp else []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(parser, batch=4, steps=3, modes=('tiny', 'full', 'all'), data_root='data/synthetic_pose',
                         work_dir='work_dirs/benchmark_pose_tiny')
    parser.add_argument('--forward-batch', type=int, default=8, help='full: images per timed forward pass')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.single:
        print(json.dumps(_measure_in_this_process(args.config or FULL_CONFIG, args.batch, args.steps,
                                                  args.forward_batch, args.amp)))
        return
    load = os.getloadavg()[0]
    print(f'machine: {os.cpu_count()} CPUs, load average {load:.1f} at start, torch threads {torch.get_num_threads()}')
    if args.mode in ('tiny', 'all'):
        result = tiny_learning_check(args.config or TINY_CONFIG, args.data_root, args.work_dir, args.iters,
                                     args.pretrained)
        print(f"tiny pose twin: AP untrained {result['untrained_ap']:.3f} -> trained {result['trained_ap']:.3f} "
              f"(AP50 {result['untrained_ap50']:.3f} -> {result['trained_ap50']:.3f}) after {result['iters']} iters, "
              f"{result['seconds_per_iter']:.2f} s/iter, {result['train_seconds']:.0f} s training")
    if args.mode in ('full', 'all'):
        result = full_model_cost(args.config if args.mode == 'full' and args.config else FULL_CONFIG, args.batch,
                                 args.steps, args.forward_batch, args.amp, args.threads)
        print(f"full model{' (bf16 autocast)' if result['amp'] else ''}: {result['params_m']:.1f} M params at "
              f"{result['input']}: forward {result['forward_img_per_s']:.2f} img/s (batch {result['forward_batch']}), "
              f"fwd+bwd {result['train_step_seconds']:.2f} s at batch {result['train_batch']} "
              f"({result['train_img_per_s']:.2f} img/s), peak RSS {result['peak_rss_gb']:.2f} GB")
    print(f'load average at the end: {os.getloadavg()[0]:.1f}')


if __name__ == '__main__':
    main()
