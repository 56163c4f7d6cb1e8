#!/usr/bin/env python
"""Pose benchmarks (printed, not asserted).

    python tools/benchmark_pose.py tiny                  # synthetic set, untrained AP, train, trained AP, s/iter
    python tools/benchmark_pose.py tiny --pretrained work_dirs/demo/pretrain/epoch_50.pth
    python tools/benchmark_pose.py full                  # ViT-B 256x192: params, img/s, fwd+bwd time, peak RSS
    python tools/benchmark_pose.py full --config configs/pose/heatmap_vit-l-mae_8xb64-210e_coco-256x192.py

Each measurement is one plain function (`tiny_learning_check`, `full_model_cost`), so tools/benchmark.py can
call them. The full-size measurement runs in a fresh process, so its peak RSS is the model's own.
"""
import argparse
import json
import os
import os.path as osp
import resource
import subprocess
import sys
import time
from typing import Dict, Optional

import torch

TINY_CONFIG = 'configs/pose/heatmap_vit-tiny-mae_1xb32-300iter_synthetic-128x96.py'
FULL_CONFIG = 'configs/pose/heatmap_vit-b-mae_8xb64-210e_coco-256x192.py'


def tiny_learning_check(config: str = TINY_CONFIG, data_root: str = 'data/synthetic_pose',
                        work_dir: str = 'work_dirs/benchmark_pose_tiny', iters: Optional[int] = None,
                        pretrained: Optional[str] = None, seed: int = 0) -> Dict[str, float]:
    """Generate the synthetic set (if missing), evaluate the untrained model, train, evaluate again.

    Returns dict(untrained_ap, trained_ap, seconds_per_iter, train_seconds, iters).
    """
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mae_transfer.datasets import generate_pose_dataset
    from mae_transfer.utils.configs import set_pretrained

    if not osp.isfile(osp.join(data_root, 'annotations', 'person_keypoints_val.json')):
        generate_pose_dataset(data_root, seed=seed)
    cfg = Config.fromfile(config)
    root = data_root.rstrip('/') + '/'
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = root
    for evaluator in ('val_evaluator', 'test_evaluator'):
        cfg[evaluator].ann_file = root + 'annotations/person_keypoints_val.json'
    iters = iters or cfg.train_cfg.max_iters
    cfg.train_cfg.max_iters = iters
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None  # no validation inside the timed training
    cfg.default_hooks.checkpoint.interval = iters
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=seed)
    if pretrained is not None:
        set_pretrained(cfg, pretrained)
    runner = Runner.from_cfg(cfg)
    runner.model.init_weights()  # the pretrained backbone (if any) counts as "untrained" for the pose task
    untrained = runner.test()
    start = time.perf_counter()
    runner.train()
    train_seconds = time.perf_counter() - start
    trained = runner.test()
    return dict(untrained_ap=float(untrained['coco/AP']), trained_ap=float(trained['coco/AP']),
                untrained_ap50=float(untrained['coco/AP .5']), trained_ap50=float(trained['coco/AP .5']),
                seconds_per_iter=train_seconds / iters, train_seconds=train_seconds, iters=iters)


def _measure_in_this_process(config: str, batch: int, steps: int, forward_batch: int) -> Dict[str, float]:
    from mmengine.config import Config

    from mae_transfer.utils.configs import build_model

    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None  # random weights: the cost does not depend on them
    model = build_model(cfg)
    width, height = cfg.codec['input_size']
    heat_w, heat_h = cfg.codec['heatmap_size']
    params = sum(p.numel() for p in model.parameters())

    model.eval()
    x = torch.randn(forward_batch, 3, height, width)
    with torch.no_grad():
        model(x, mode='tensor')  # warm-up
        start = time.perf_counter()
        for _ in range(steps):
            model(x, mode='tensor')
        forward_seconds = (time.perf_counter() - start) / steps

    model.train()
    x = torch.randn(batch, 3, height, width)
    target = torch.rand(batch, 17, heat_h, heat_w)
    weights = torch.ones(batch, 17)
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        heatmaps = model(x, mode='tensor')
        loss = model.loss_module(heatmaps, target, weights)
        loss.backward()
        model.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    train_seconds = sorted(times[1:])[len(times[1:]) // 2]  # median after a warm-up step
    return dict(params_m=params / 1e6, input=f'{height}x{width}', forward_batch=forward_batch,
                forward_img_per_s=forward_batch / forward_seconds, train_batch=batch,
                train_step_seconds=train_seconds, train_img_per_s=batch / train_seconds,
                peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2,
                threads=torch.get_num_threads())


def full_model_cost(config: str = FULL_CONFIG, batch: int = 4, steps: int = 3,
                    forward_batch: int = 8) -> Dict[str, float]:
    """Parameters, forward img/s (no flip test), fwd+bwd seconds at `batch`, peak RSS: in a fresh process."""
    out = subprocess.run([sys.executable, __file__, '_measure', '--config', config, '--batch', str(batch),
                          '--steps', str(steps), '--forward-batch', str(forward_batch)],
                         capture_output=True, text=True, check=True, cwd=os.getcwd())
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('what', choices=['tiny', 'full', 'all', '_measure'])
    parser.add_argument('--config', default=None)
    parser.add_argument('--data-root', default='data/synthetic_pose')
    parser.add_argument('--work-dir', default='work_dirs/benchmark_pose_tiny')
    parser.add_argument('--iters', type=int, default=None)
    parser.add_argument('--pretrained', default=None)
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--forward-batch', type=int, default=8)
    parser.add_argument('--steps', type=int, default=3)
    args = parser.parse_args()
    if args.what == '_measure':
        print(json.dumps(_measure_in_this_process(args.config or FULL_CONFIG, args.batch, args.steps,
                                                  args.forward_batch)))
        return
    load = os.getloadavg()[0]
    print(f'machine: {os.cpu_count()} CPUs, load average {load:.1f} at start, torch threads {torch.get_num_threads()}')
    if args.what in ('tiny', 'all'):
        result = tiny_learning_check(args.config or TINY_CONFIG, args.data_root, args.work_dir, args.iters,
                                     args.pretrained)
        print(f"tiny pose twin: AP untrained {result['untrained_ap']:.3f} -> trained {result['trained_ap']:.3f} "
              f"(AP50 {result['untrained_ap50']:.3f} -> {result['trained_ap50']:.3f}) after {result['iters']} iters, "
              f"{result['seconds_per_iter']:.2f} s/iter, {result['train_seconds']:.0f} s training")
    if args.what in ('full', 'all'):
        result = full_model_cost(args.config if args.what == 'full' and args.config else FULL_CONFIG, args.batch,
                                 args.steps, args.forward_batch)
        print(f"full model: {result['params_m']:.1f} M params at {result['input']}: forward "
              f"{result['forward_img_per_s']:.2f} img/s (batch {result['forward_batch']}), fwd+bwd "
              f"{result['train_step_seconds']:.2f} s at batch {result['train_batch']} "
              f"({result['train_img_per_s']:.2f} img/s), peak RSS {result['peak_rss_gb']:.2f} GB")
    print(f'load average at the end: {os.getloadavg()[0]:.1f}')


if __name__ == '__main__':
    main()
