"""Pose benchmarks (printed, not asserted).

    python tools/benchmark.py pose tiny                  # synthetic set, untrained AP, train, trained AP, s/iter
    python tools/benchmark.py pose tiny --pretrained work_dirs/demo/pretrain/epoch_12.pth
    python tools/benchmark.py pose full                  # ViT-B 256x192: params, img/s, fwd+bwd time, peak RSS
    python tools/benchmark.py pose full --config pose/heatmap_vit-large-p16_8xb64-210e_coco-256x192.py
    python tools/benchmark.py pose all                   # tiny, then full

tiny writes the synthetic keypoint set under data/ (`ensure_synthetic`, if missing). The full-size measurement
runs in a fresh process, so its peak RSS is the model's own.
"""
import time
from typing import Dict, List, Optional

import torch

from mae_transfer.utils.benchmarking import (build_random_model, learning_check, median, parameter_counts,
                                             run_task_benchmark, time_training_steps)

TINY_CONFIG = 'pose/heatmap_vit-tiny-p16_1xb32-300i_synthetic-128x96.py'
FULL_CONFIG = 'pose/heatmap_vit-base-p16_8xb64-210e_coco-256x192.py'


def tiny_learning_check(config: str = TINY_CONFIG, data_root: str = 'data/synthetic_pose',
                        work_dir: str = 'work_dirs/benchmark_pose_tiny', iters: Optional[int] = None,
                        pretrained: Optional[str] = None, seed: int = 0) -> Dict[str, float]:
    """Generate the synthetic set (if missing), evaluate the untrained model, train, evaluate again.

    Returns dict(untrained_ap, trained_ap, untrained_ap50, trained_ap50, seconds_per_iter, train_seconds, iters).
    """
    from mae_transfer.datasets.synthetic import ensure_synthetic
    from mae_transfer.utils.configs import load_config

    cfg = load_config(config)
    ensure_synthetic('pose', data_root, cfg=cfg, seed=seed)
    # the pretrained backbone (if any) counts as "untrained" for the pose task
    result = learning_check(cfg, dict(ap='coco/AP', ap50='coco/AP .5'), iters, pretrained, seed, work_dir)
    return dict(untrained_ap=result['before']['ap'], trained_ap=result['after']['ap'],
                untrained_ap50=result['before']['ap50'], trained_ap50=result['after']['ap50'],
                seconds_per_iter=result['s_per_iter'], train_seconds=result['train_s'], iters=result['iters'])


def full_step(config: str = FULL_CONFIG, batch: int = 4, amp: bool = False, steps: int = 3,
              forward_batch: int = 8) -> Dict[str, float]:
    """Parameters, forward img/s (no flip test), fwd+bwd seconds at `batch` and the peak RSS of a full-size pose
    model on the CPU. Run it in a fresh process (`main` does) so that the peak RSS is this measurement's."""
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
    train_seconds = median(cost['step_s'][1:])  # after a warm-up step
    return dict(params_m=parameter_counts(model)['params_m'], input=f'{height}x{width}', forward_batch=forward_batch,
                forward_img_per_s=forward_batch / forward_seconds, train_batch=batch,
                train_step_seconds=train_seconds, train_img_per_s=batch / train_seconds,
                peak_rss_gb=cost['peak_mem_mib'] / 1024, threads=torch.get_num_threads(), amp=amp)


def print_tiny(result: dict) -> None:
    print(f"tiny pose twin: AP untrained {result['untrained_ap']:.3f} -> trained {result['trained_ap']:.3f} "
          f"(AP50 {result['untrained_ap50']:.3f} -> {result['trained_ap50']:.3f}) after {result['iters']} iters, "
          f"{result['seconds_per_iter']:.2f} s/iter, {result['train_seconds']:.0f} s training")


def print_full(result: dict) -> None:
    print(f"full model{' (bf16 autocast)' if result['amp'] else ''}: {result['params_m']:.1f} M params at "
          f"{result['input']}: forward {result['forward_img_per_s']:.2f} img/s (batch {result['forward_batch']}), "
          f"fwd+bwd {result['train_step_seconds']:.2f} s at batch {result['train_batch']} "
          f"({result['train_img_per_s']:.2f} img/s), peak RSS {result['peak_rss_gb']:.2f} GB")


def main(argv: Optional[List[str]] = None) -> None:
    from mae_transfer.tools.benchmark import child_command
    run_task_benchmark(
        child_command('pose'), __doc__, batch=4, steps=3, configs=(TINY_CONFIG, FULL_CONFIG),
        tiny_check=tiny_learning_check, full_step=full_step, print_tiny=print_tiny, print_full=print_full,
        argv=argv, modes=('tiny', 'full', 'all'), data_root='data/synthetic_pose',
        work_dir='work_dirs/benchmark_pose_tiny', report_load=True, full_options=('forward_batch',),
        add_arguments=lambda parser: parser.add_argument('--forward-batch', type=int, default=8,
                                                         help='full: images per timed forward pass'))
