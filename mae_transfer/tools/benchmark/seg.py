"""Segmentation benchmarks: does the tiny UperNet twin learn (`tiny`), and what does the full recipe cost (`full`).

tiny: writes the synthetic ADE20K-layout set under data/ (`ensure_synthetic`, if missing), evaluates the
untrained model (the exact weights training starts from), trains the tiny config, evaluates again and prints
mIoU / mAcc / aAcc before and after, with the wall and CPU seconds per training iteration.

    mae-transfer benchmark seg tiny                                   # the config's 200 iterations, random init
    mae-transfer benchmark seg tiny --pretrained work_dirs/demo/pretrain/epoch_12.pth --iters 200

full: parameters, and the time and peak memory of one training forward + backward (losses of both heads) of a
full-size config at its crop size (ViT-B: 512 x 512, batch 2 as on each of the 8 GPUs), in a fresh process so
the peak RSS is its own (GPU: peak allocated).

    mae-transfer benchmark seg full                                   # ViT-B, fp32, batch 2
    mae-transfer benchmark seg full --config seg/upernet_vit-large-p16_8xb2-160ki_ade20k-512x512.py --amp

Numbers are printed, never asserted: machines are shared and noisy.
"""
from typing import List, Optional

import torch

from mae_transfer.utils.benchmarking import (build_random_model, default_device, learning_check, parameter_counts,
                                             print_before_after, print_step_cost, run_task_benchmark,
                                             synthetic_training_loss, time_training_steps)
from mae_transfer.utils.configs import config_name

TINY_CONFIG = 'seg/upernet_vit-tiny-p16_1xb8-200i_synthetic-128x128.py'
FULL_CONFIG = 'seg/upernet_vit-base-p16_8xb2-160ki_ade20k-512x512.py'
METRIC_KEYS = ('mIoU', 'mAcc', 'aAcc')


def tiny_learning_check(config: str = TINY_CONFIG, data_root: Optional[str] = None, work_dir: Optional[str] = None,
                        iters: Optional[int] = None, pretrained: Optional[str] = None, seed: int = 0) -> dict:
    """Write the synthetic set under `data_root` (data/synthetic_seg by default) if it is missing, then evaluate the
    untrained tiny model, train it and evaluate again (`learning_check`, which explains the other arguments).
    """
    from mae_transfer.datasets.synthetic import ensure_synthetic
    from mae_transfer.utils.configs import load_config

    cfg = load_config(config)
    ensure_synthetic('seg', data_root, cfg=cfg)
    result = learning_check(cfg, {key: key for key in METRIC_KEYS}, iters, pretrained, seed, work_dir,
                            work_dir_prefix='benchmark_seg_')
    return dict(result, config=config_name(config), pretrained=pretrained or 'none (random)')


def full_step(config: str = FULL_CONFIG, batch: int = 2, amp: bool = False, steps: int = 1) -> dict:
    """Build a full-size config's segmentor and time `steps` training forward + backward passes at its crop.

    Run it in a fresh process (`main` does) so that the peak RSS is this measurement's.
    """
    device = default_device()
    cfg, model = build_random_model(config, device)
    height, width = cfg.model.data_preprocessor['size']
    cost = time_training_steps(model, synthetic_training_loss(cfg, model, batch, device), steps, amp, device)
    return dict(cost, config=config_name(config), batch=batch, crop=(height, width), amp=amp, device=device,
                threads=torch.get_num_threads(), **parameter_counts(model))


def main(argv: Optional[List[str]] = None) -> None:
    from mae_transfer.tools.benchmark import child_command
    run_task_benchmark(child_command('seg'), __doc__, batch=2, configs=(TINY_CONFIG, FULL_CONFIG),
                       tiny_check=tiny_learning_check, full_step=full_step,
                       print_tiny=lambda result: print_before_after(result, width=7, digits=2),
                       print_full=lambda result: print_step_cost(result, result['crop']), argv=argv)
