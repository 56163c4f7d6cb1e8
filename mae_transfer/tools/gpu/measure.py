"""The GPU check's child processes: each measurement runs in a fresh interpreter so that it imports the stack as
installed (mmcv built a moment ago) and its peak memory is its own.

    python -m mae_transfer.tools.gpu.measure --config CONFIG --iters 20 --device cuda   # one training run
    python -m mae_transfer.tools.gpu.measure --ops cuda                                 # mmcv ops vs torchvision
    python -m mae_transfer.tools.gpu.measure --imports                                  # the stack imports

Each prints one JSON line last; `device_run` reads it.
"""
import argparse
import json
import sys
from typing import Callable, List, Optional, Sequence

import torch

# What the runs import: a missing or broken one is the first thing to know on a new machine.
STACK_MODULES = ('mmengine', 'mmcv', 'mmcv.ops', 'mmdet', 'mmdet.models', 'mmseg', 'mmseg.models', 'pycocotools.coco',
                 'cv2', 'scipy', 'timm', 'mae_transfer', 'mae_transfer.models')
# These load mmcv._ext: an mmcv built without ops (when the CUDA build does not fit) cannot import them.
NEED_COMPILED_OPS = ('mmcv.ops', 'mmdet.models', 'mmseg.models')


def autocast_dtype(task: str, device: str) -> Optional[str]:
    """The mixed precision of a task's run: bf16, except detection, whose mmcv 2.1.0 kernels (nms reads float
    pointers, roi_align dispatches float and half) reject bf16: fp16 with loss scaling on a GPU, as
    `train.py --amp` trains it there, and fp32 on a CPU, where those kernels take float only."""
    if task == 'det':
        return 'float16' if device == 'cuda' else None
    return 'bfloat16'


class _ScaledStep:
    """`optimizer.step()` through a GradScaler, for fp16 runs (`time_training_steps` steps what it is given)."""

    def __init__(self, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
        self.optimizer, self.scaler = optimizer, scaler

    def step(self) -> None:
        self.scaler.step(self.optimizer)
        self.scaler.update()


def measure_config(config: str, iters: int, device: str) -> dict:
    """`iters` training steps (forward, backward, AdamW) of a config at its per-GPU batch under autocast
    (`autocast_dtype`): it/s and img/s after the first (warm-up) step, peak memory, the last loss, and for
    pretraining the model FLOPs of one step (`utils.flops.count_step_flops`)."""
    from mae_transfer.utils.benchmarking import (build_random_model, median, peak_memory_mib,
                                                 synthetic_training_loss, time_training_steps)
    from mae_transfer.utils.configs import config_name, config_task
    from mae_transfer.utils.flops import count_step_flops

    cfg, model = build_random_model(config, device)
    task = config_task(cfg)
    batch = cfg.get('train_dataloader', {}).get('batch_size', 2)  # the recipe's per-GPU batch
    compute = synthetic_training_loss(cfg, model, batch, device)
    dtype_name = autocast_dtype(task, device)
    dtype = getattr(torch, dtype_name) if dtype_name else None
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    scaler = torch.amp.GradScaler(device) if dtype_name == 'float16' else None
    losses: List[torch.Tensor] = []

    def compute_loss() -> torch.Tensor:
        loss = compute()
        losses.append(loss.detach())
        return scaler.scale(loss) if scaler is not None else loss

    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    cost = time_training_steps(model, compute_loss, iters, device=device, dtype=dtype,
                               optimizer=_ScaledStep(optimizer, scaler) if scaler is not None else optimizer)
    timed = cost['step_s'][1:] or cost['step_s']  # the first step pays for kernel selection and allocation
    row = dict(config=config_name(config), task=task, batch=batch, iters=iters, device=device,
               dtype=dtype_name or 'float32', it_per_s=len(timed) / sum(timed),
               img_per_s=batch * len(timed) / sum(timed), step_s=median(timed),
               peak_mem_mib=peak_memory_mib(device), loss=float(losses[-1].float()))
    if task == 'pretrain':
        row['flops_per_step'] = count_step_flops(model, compute, device)
    return row


def ops_check(device: str) -> dict:
    """mmcv.ops.nms and mmcv.ops.roi_align on `device` against torchvision's on the CPU: same kept boxes, values
    within 1e-4."""
    import torchvision
    from mmcv.ops import nms, roi_align

    problems = []
    generator = torch.Generator().manual_seed(0)
    xy = torch.rand(300, 2, generator=generator) * 200
    boxes = torch.cat([xy, xy + 10 + torch.rand(300, 2, generator=generator) * 60], dim=1)  # [300, 4] x1 y1 x2 y2
    scores = torch.rand(300, generator=generator)
    _, keep = nms(boxes.to(device), scores.to(device), iou_threshold=0.5)
    expected = torchvision.ops.nms(boxes, scores, 0.5)
    if keep.cpu().tolist() != expected.tolist():
        problems.append(f'nms keeps {keep.numel()} boxes on {device}, torchvision {expected.numel()} on the CPU')
    features = torch.rand(2, 16, 64, 64, generator=generator)  # [N, C, H, W]
    rois = torch.cat([torch.tensor([[0.0], [1.0]]).repeat(20, 1), boxes[:40]], dim=1)  # [40, 5] batch index + box
    got = roi_align(features.to(device), rois.to(device), (7, 7), 0.25, 2, 'avg', True).cpu()
    want = torchvision.ops.roi_align(features, rois, (7, 7), 0.25, 2, aligned=True)
    difference = float((got - want).abs().max())
    if difference > 1e-4:
        problems.append(f'roi_align differs from torchvision by up to {difference:.2e}')
    return dict(problems=problems, summary=f'on {device}: nms keeps the same {expected.numel()} of 300 boxes as '
                                           f'torchvision; roi_align within {difference:.1e} of torchvision')


def import_check(modules: Sequence[str] = STACK_MODULES) -> dict:
    """Import each module; returns dict(problems, summary) with the versions of the main packages."""
    import importlib

    problems, versions = [], {}
    for name in modules:
        try:
            module = importlib.import_module(name)
        except Exception as error:  # noqa: BLE001 - any failure to import is what this reports
            problems.append(f'import {name}: {type(error).__name__}: {error}'.splitlines()[0][:300])
            continue
        if '.' not in name and hasattr(module, '__version__'):
            versions[name] = str(module.__version__)
    summary = ', '.join(f'{name} {version}' for name, version in versions.items())
    return dict(problems=problems, summary=summary)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument('--config', help='measure one config')
    what.add_argument('--ops', metavar='DEVICE', help='compare mmcv ops on DEVICE with torchvision')
    what.add_argument('--imports', action='store_true', help='import the stack')
    parser.add_argument('--no-ops', action='store_true', help='with --imports: leave out what needs mmcv._ext')
    parser.add_argument('--iters', type=int, default=20)
    parser.add_argument('--device', default='cuda')
    args = parser.parse_args(argv)
    run: Callable[[], dict]
    if args.config:
        run = lambda: measure_config(args.config, args.iters, args.device)  # noqa: E731
    elif args.ops:
        run = lambda: ops_check(args.ops)  # noqa: E731
    else:
        modules = [name for name in STACK_MODULES if not (args.no_ops and name in NEED_COMPILED_OPS)]
        run = lambda: import_check(modules)  # noqa: E731
    print(json.dumps(run()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
