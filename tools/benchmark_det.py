#!/usr/bin/env python
"""Detection benchmarks: does the tiny Mask R-CNN twin learn (`tiny`), and what does the full recipe cost (`full`).

tiny: writes the synthetic COCO-format shapes set (if missing), evaluates the untrained model (the exact weights
training starts from), trains the tiny config, evaluates again and prints COCO box / mask AP before and after,
with the wall and CPU seconds per training iteration.

    python tools/benchmark_det.py tiny                                   # the config's schedule, random init
    python tools/benchmark_det.py tiny --pretrained work_dirs/demo/pretrain/epoch_50.pth

full: parameters, and the time and peak memory of one training forward + backward (RPN, box and mask losses) of
a full-size config at its input size (1024 x 1024, batch 1 by default), with a few ground-truth instances, in a
fresh process so the peak RSS is its own (GPU: peak allocated).

    python tools/benchmark_det.py full                                   # ViT-B, fp32, batch 1
    python tools/benchmark_det.py full --config configs/det/mask-rcnn_vit-large-p16_16xb4-amp-lsj-184ki_coco-1024x1024.py --amp

Numbers are printed, never asserted: machines are shared and noisy.
"""
import os.path as osp
from pathlib import Path
from typing import Optional

import torch

from mae_transfer.utils.benchmarking import (build_random_model, default_device, learning_check, parameter_counts,
                                             print_before_after, print_step_cost, run_task_benchmark,
                                             time_training_steps)

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = ROOT / 'configs' / 'det' / 'mask-rcnn_vit-tiny-p16_1xb4-lsj-600i_synthetic-128x128.py'
FULL_CONFIG = ROOT / 'configs' / 'det' / 'mask-rcnn_vit-base-p16_16xb4-amp-lsj-184ki_coco-1024x1024.py'
METRIC_KEYS = ('bbox_mAP', 'bbox_mAP_50', 'segm_mAP', 'segm_mAP_50')


def tiny_learning_check(config: str = str(TINY_CONFIG), data_root: Optional[str] = None, work_dir: Optional[str] = None,
                        iters: Optional[int] = None, pretrained: Optional[str] = None, seed: int = 0) -> dict:
    """Write the synthetic set under `data_root` (the config's by default) if it is missing, then evaluate the
    untrained tiny detector, train it and evaluate again (`learning_check`, which explains the other arguments).
    """
    from mmengine.config import Config

    from mae_transfer.datasets.synthetic_coco import generate_coco_instances

    cfg = Config.fromfile(config)
    data_root = str(data_root or cfg.train_dataloader.dataset.data_root)
    if not (Path(data_root) / 'annotations' / 'instances_train.json').is_file():
        generate_coco_instances(data_root)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = data_root
    for evaluator in ('val_evaluator', 'test_evaluator'):
        cfg[evaluator].ann_file = osp.join(data_root, 'annotations', 'instances_val.json')
    result = learning_check(cfg, {key: f'coco/{key}' for key in METRIC_KEYS}, iters, pretrained, seed, work_dir,
                            work_dir_prefix='benchmark_det_')
    return dict(result, config=osp.relpath(config, ROOT), pretrained=pretrained or 'none (random)')


def synthetic_instances(height: int, width: int, num: int = 3, seed: int = 0):
    """`num` rectangular ground-truth instances (boxes, labels, bitmap masks) inside an image."""
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData

    generator = torch.Generator().manual_seed(seed)
    boxes, masks = [], torch.zeros(num, height, width, dtype=torch.uint8)
    for index in range(num):
        w, h = (torch.rand(2, generator=generator) * 0.4 + 0.1) * torch.tensor([width, height])
        x, y = torch.rand(2, generator=generator) * torch.tensor([width - w, height - h])
        x0, y0, x1, y1 = int(x), int(y), int(x + w), int(y + h)
        boxes.append([x0, y0, x1, y1])
        masks[index, y0:y1, x0:x1] = 1
    return InstanceData(bboxes=torch.tensor(boxes, dtype=torch.float32), labels=torch.arange(num) % 3,
                        masks=BitmapMasks(masks.numpy(), height, width))


def full_step(config: str = str(FULL_CONFIG), batch: int = 1, amp: bool = False, steps: int = 1) -> dict:
    """Build a full-size config's detector and time `steps` training forward + backward passes at its input size.

    Run it in a fresh process (`main` does) so that the peak RSS is this measurement's.
    """
    from mmdet.structures import DetDataSample
    from mmengine.registry import DefaultScope

    device = default_device()
    cfg, model = build_random_model(config, device)
    height, width = cfg.image_size
    inputs = torch.randn(batch, 3, height, width, device=device)  # what the data preprocessor hands over
    samples = []
    for index in range(batch):
        sample = DetDataSample(metainfo=dict(img_shape=(height, width), pad_shape=(height, width),
                                             ori_shape=(height, width), batch_input_shape=(height, width),
                                             scale_factor=(1.0, 1.0)))
        sample.gt_instances = synthetic_instances(height, width, seed=index).to(device)
        samples.append(sample)
    with DefaultScope.overwrite_default_scope('mmdet'):
        cost = time_training_steps(model, lambda: model.parse_losses(model.loss(inputs, samples))[0], steps, amp,
                                   device)
    return dict(cost, config=osp.relpath(config, ROOT), batch=batch, size=(height, width), amp=amp, device=device,
                threads=torch.get_num_threads(), **parameter_counts(model))


def main() -> None:
    run_task_benchmark(__file__, __doc__, batch=1, configs=(str(TINY_CONFIG), str(FULL_CONFIG)),
                       tiny_check=tiny_learning_check, full_step=full_step,
                       print_tiny=lambda result: print_before_after(result, width=11, digits=3, total=True),
                       print_full=lambda result: print_step_cost(result, result['size']))


if __name__ == '__main__':
    main()
