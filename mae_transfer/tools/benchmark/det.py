"""Detection benchmarks: does the tiny Mask R-CNN twin learn (`tiny`), and what does the full recipe cost (`full`).

tiny: writes the synthetic COCO-format shapes set under data/ (`ensure_synthetic`, if missing), evaluates the
untrained model (the exact weights training starts from), trains the tiny config, evaluates again and prints COCO
box / mask AP before and after, with the wall and CPU seconds per training iteration.

    mae-transfer benchmark det tiny                                   # the config's schedule, random init
    mae-transfer benchmark det tiny --pretrained work_dirs/demo/pretrain/epoch_12.pth

full: parameters, and the time and peak memory of one training forward + backward (RPN, box and mask losses) of
a full-size config at its input size (1024 x 1024, batch 1 by default), with a few ground-truth instances, in a
fresh process so the peak RSS is its own (GPU: peak allocated).

    mae-transfer benchmark det full                                   # ViT-B, fp32, batch 1
    mae-transfer benchmark det full --config det/mask-rcnn_vit-large-p16_16xb4-amp-lsj-184ki_coco-1024x1024.py --amp

Numbers are printed, never asserted: machines are shared and noisy.
"""
from typing import List, Optional

import torch

from mae_transfer.utils.benchmarking import (build_random_model, default_device, learning_check, parameter_counts,
                                             print_before_after, print_step_cost, run_task_benchmark,
                                             synthetic_training_loss, time_training_steps)
from mae_transfer.utils.configs import config_name

TINY_CONFIG = 'det/mask-rcnn_vit-tiny-p16_1xb4-lsj-600i_synthetic-128x128.py'
FULL_CONFIG = 'det/mask-rcnn_vit-base-p16_16xb4-amp-lsj-184ki_coco-1024x1024.py'
METRIC_KEYS = ('bbox_mAP', 'bbox_mAP_50', 'segm_mAP', 'segm_mAP_50')


def tiny_learning_check(config: str = TINY_CONFIG, data_root: Optional[str] = None, work_dir: Optional[str] = None,
                        iters: Optional[int] = None, pretrained: Optional[str] = None, seed: int = 0) -> dict:
    """Write the synthetic set under `data_root` (data/synthetic_det by default) if it is missing, then evaluate the
    untrained tiny detector, train it and evaluate again (`learning_check`, which explains the other arguments).
    """
    from mae_transfer.datasets.synthetic import ensure_synthetic
    from mae_transfer.utils.configs import load_config

    cfg = load_config(config)
    ensure_synthetic('det', data_root, cfg=cfg)
    result = learning_check(cfg, {key: f'coco/{key}' for key in METRIC_KEYS}, iters, pretrained, seed, work_dir,
                            work_dir_prefix='benchmark_det_')
    return dict(result, config=config_name(config), pretrained=pretrained or 'none (random)')


def full_step(config: str = FULL_CONFIG, batch: int = 1, amp: bool = False, steps: int = 1) -> dict:
    """Build a full-size config's detector and time `steps` training forward + backward passes at its input size.

    Run it in a fresh process (`main` does) so that the peak RSS is this measurement's.
    """
    device = default_device()
    cfg, model = build_random_model(config, device)
    height, width = cfg.image_size
    compute_loss = synthetic_training_loss(cfg, model, batch, device)  # 3 instances per image, as preprocessed
    cost = time_training_steps(model, compute_loss, steps, amp, device)
    return dict(cost, config=config_name(config), batch=batch, size=(height, width), amp=amp, device=device,
                threads=torch.get_num_threads(), **parameter_counts(model))


def main(argv: Optional[List[str]] = None) -> None:
    from mae_transfer.tools.benchmark import child_command
    run_task_benchmark(child_command('det'), __doc__, batch=1, configs=(TINY_CONFIG, FULL_CONFIG),
                       tiny_check=tiny_learning_check, full_step=full_step,
                       print_tiny=lambda result: print_before_after(result, width=11, digits=3, total=True),
                       print_full=lambda result: print_step_cost(result, result['size']), argv=argv)
