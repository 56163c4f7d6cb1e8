"""Pose benchmarks (printed, not asserted).

    mae-transfer benchmark pose tiny                  # synthetic set, untrained AP, train, trained AP, s/iter
    mae-transfer benchmark pose tiny --pretrained work_dirs/demo/pretrain/epoch_12.pth
    mae-transfer benchmark pose full                  # ViT-B 256x192: training and inference crops/s, memory
    mae-transfer benchmark pose full --batch 4 --forward-batch 8 --steps 2   # quicker on a CPU
    mae-transfer benchmark pose full --config pose/heatmap_vit-large-p16_8xb64-210e_coco-256x192.py
    mae-transfer benchmark pose full --compile            # the backbone compiled (inductor)
    mae-transfer benchmark pose all                   # tiny, then full

tiny writes the synthetic keypoint set under data/ (`ensure_synthetic`, if missing). full measures, on random
weights and synthetic crops: training crops/s (forward + backward + the config's optimizer step: layer decay
AdamW, gradient clipping; `--batch`, default the config's on a GPU, 8 on the CPU) and inference crops/s of the
predict path (heatmaps, flip test as the config does it, decoding, mapping to image pixels; `--forward-batch`),
with and without the flip test. It runs in a fresh process, so its peak memory is the model's own.
"""
import argparse
import time
from typing import Dict, List, Optional

import numpy as np
import torch
from mmengine.structures import BaseDataElement

from mae_transfer.utils.benchmarking import (build_random_model, learning_check, median, parameter_counts,
                                             peak_memory_mib, run_task_benchmark,
                                             time_training_steps)

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


def synthetic_crops(batch: int, height: int, width: int, device: str = 'cpu'):
    """`batch` random normalised crops [N, 3, H, W] and their data samples (crop centre / scale in image pixels),
    what the predict path receives from the data preprocessor."""
    generator = torch.Generator().manual_seed(0)
    crops = torch.randn(batch, 3, height, width, generator=generator).to(device)
    samples = [BaseDataElement(metainfo=dict(input_center=np.array([100.0 + i, 120.0], np.float32),
                                             input_scale=np.array([width * 1.25, height * 1.25], np.float32)))
               for i in range(batch)]
    return crops, samples


def time_predict(model: torch.nn.Module, crops: torch.Tensor, samples: list, steps: int, device: str,
                 amp: bool) -> List[float]:
    """Seconds of a warm-up call of the model's predict path (flip test as its test_cfg says, heatmap decoding
    and mapping back to image pixels included; compilation, if compiled) and of each of `steps` calls after it."""
    times = []
    with torch.no_grad(), torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=amp):
        for step in range(steps + 1):
            if device == 'cuda':
                torch.cuda.synchronize()
            start = time.perf_counter()
            model(crops, samples, mode='predict')  # ends in numpy: the decoding waits for the GPU
            times.append(time.perf_counter() - start)
    return times


def full_step(config: str = FULL_CONFIG, batch: int = 0, amp: bool = False, steps: int = 3,
              forward_batch: int = 0, compile: Optional[str] = None) -> Dict[str, float]:
    """Parameters, training crops/s (forward + backward + the config's optimizer step), inference crops/s of the
    predict path with and without the flip test, and the peak memory of a full-size pose model.

    batch / forward_batch 0: the config's training / test batch on a GPU, 8 / 16 on the CPU. compile: a
    torch.compile backend for the backbone (as `tools/train.py --compile`); the first training step and the
    first predict call, compilation included, are returned too. Run it in a fresh process (`main` does) so that
    the peak memory is this measurement's.
    """
    from mae_transfer.engine import compile_target
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope

    from mae_transfer.utils.benchmarking import default_device, synthetic_training_loss
    device = default_device()
    cfg, model = build_random_model(config, device)
    width, height = cfg.codec['input_size']
    batch = batch or (cfg.train_dataloader.batch_size if device == 'cuda' else 8)
    forward_batch = forward_batch or (cfg.val_dataloader.batch_size if device == 'cuda' else 16)

    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)  # layer decay, AdamW, gradient clipping
    if compile:
        compile_target(model).compile(backend=compile)
    compute_loss = synthetic_training_loss(cfg, model, batch, device)
    cost = time_training_steps(model, compute_loss, steps + 1, amp, device, optimizer=optim_wrapper)
    train_seconds = median(cost['step_s'][1:])  # after a warm-up step

    model.eval()
    crops, samples = synthetic_crops(forward_batch, height, width, device)
    flip_test = model.test_cfg.get('flip_test', True)
    model.test_cfg['flip_test'] = True
    flip_times = time_predict(model, crops, samples, steps, device, amp)
    model.test_cfg['flip_test'] = False
    plain_seconds = median(time_predict(model, crops, samples, steps, device, amp)[1:])
    model.test_cfg['flip_test'] = flip_test
    return dict(params_m=parameter_counts(model)['params_m'], input=f'{height}x{width}', device=device,
                train_batch=batch, train_step_seconds=train_seconds, train_crops_per_s=batch / train_seconds,
                forward_batch=forward_batch, flip_crops_per_s=forward_batch / median(flip_times[1:]),
                plain_crops_per_s=forward_batch / plain_seconds, config_flip_test=flip_test,
                peak_mem_gb=peak_memory_mib(device) / 1024, threads=torch.get_num_threads(), amp=amp,
                compile=compile or 'no', first_train_step_s=cost['step_s'][0], first_predict_s=flip_times[0])


def print_tiny(result: dict) -> None:
    print(f"tiny pose twin: AP untrained {result['untrained_ap']:.3f} -> trained {result['trained_ap']:.3f} "
          f"(AP50 {result['untrained_ap50']:.3f} -> {result['trained_ap50']:.3f}) after {result['iters']} iters, "
          f"{result['seconds_per_iter']:.2f} s/iter, {result['train_seconds']:.0f} s training")


def print_full(result: dict) -> None:
    print(f"full model{' (bf16 autocast)' if result['amp'] else ''}: {result['params_m']:.1f} M params at "
          f"{result['input']}, {result['device']} ({result['threads']} threads)\n"
          f"  training: {result['train_crops_per_s']:.2f} crops/s (fwd + bwd + optimizer step "
          f"{result['train_step_seconds']:.2f} s at batch {result['train_batch']})\n"
          f"  inference (predict, decoding included, batch {result['forward_batch']}): "
          f"{result['flip_crops_per_s']:.2f} crops/s with flip test, {result['plain_crops_per_s']:.2f} without "
          f"(the config: flip_test={result['config_flip_test']})\n"
          + (f"  compiled ({result['compile']}): first training step {result['first_train_step_s']:.1f} s, "
             f"first predict call {result['first_predict_s']:.1f} s (compilation included)\n"
             if result['compile'] != 'no' else '')
          + f"  peak memory {result['peak_mem_gb']:.2f} GB "
          f"({'peak allocated' if result['device'] == 'cuda' else 'peak RSS'})")


def main(argv: Optional[List[str]] = None) -> None:
    from mae_transfer.tools.benchmark import child_command
    run_task_benchmark(
        child_command('pose'), __doc__, batch=0, steps=3, configs=(TINY_CONFIG, FULL_CONFIG),
        tiny_check=tiny_learning_check, full_step=full_step, print_tiny=print_tiny, print_full=print_full,
        argv=argv, modes=('tiny', 'full', 'all'), data_root='data/synthetic_pose',
        work_dir='work_dirs/benchmark_pose_tiny', report_load=True, full_options=('forward_batch', 'compile'),
        add_arguments=add_pose_arguments)


def add_pose_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--forward-batch', type=int, default=0,
                        help="full: crops per timed predict call (0: the config's test batch on a GPU, 16 on CPU)")
    parser.add_argument('--compile', nargs='?', const='inductor', default=None, metavar='BACKEND',
                        help='full: torch.compile the backbone first (as tools/train.py --compile); the first '
                             'training step and predict call, compilation included, are printed')
