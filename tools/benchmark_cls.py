#!/usr/bin/env python
"""Classification benchmarks: the tiny CPU twins (accuracy before / after training, s/iter) and the full-size
models (parameters, peak memory, one forward + backward).

    python tools/benchmark_cls.py tiny                            # the three protocols, random init, 8 classes
    python tools/benchmark_cls.py tiny --protocols finetune --pretrained work_dirs/demo/pretrain/epoch_50.pth
    python tools/benchmark_cls.py full                            # ViT-B fine-tune and linear probe, batch 8, 224
    python tools/benchmark_cls.py full --configs configs/cls/ft_vit-large-p16_8xb128-coslr-50e_in1k-224x224.py

tiny: generates `data/synthetic_cls/` if missing (8 shape classes, 80 train + 25 val images each), evaluates
the untrained model (encoder as initialised, random head), trains the tiny config, evaluates again, and prints
chance / untrained / trained top-1 and top-5 with the seconds per training iteration (wall time of the training
run divided by its iterations: data loading included, evaluation not; `--iters N` shortens the runs).
full: each config in a fresh process (CPU: peak RSS of that process; GPU: peak allocated), the model built as
the config says (frozen parts frozen), random weights, one forward + backward on random images.
Numbers are printed, never asserted: the machine is shared.
"""
import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import List, Optional

from mae_transfer.utils.benchmarking import (FreshProcessError, build_random_model, default_device, learning_check,
                                             parameter_counts, run_in_fresh_process, time_training_steps)

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIGS = {
    'finetune': 'configs/cls/ft_vit-tiny-p16_1xb32-600i_synthetic-64x64.py',
    'linear_probe': 'configs/cls/linear-probe_vit-tiny-p16_1xb64-300i_synthetic-64x64.py',
    'partial_finetune': 'configs/cls/partial-ft-last2_vit-tiny-p16_1xb32-600i_synthetic-64x64.py',
}
FULL_CONFIGS = ['configs/cls/ft_vit-base-p16_8xb128-coslr-100e_in1k-224x224.py',
                'configs/cls/linear-probe_vit-base-p16_8xb2048-lars-coslr-90e_in1k-224x224.py']


def ensure_synthetic_data(root: Path, seed: int = 0) -> Path:
    """Generate the tiny configs' class folders under `root` unless they are there."""
    from mae_transfer.datasets import generate_class_folders
    if not (root / 'train').is_dir() or not (root / 'val').is_dir():
        start = time.perf_counter()
        generate_class_folders(root, train_per_class=80, val_per_class=25, seed=seed)
        print(f'generated {root} in {time.perf_counter() - start:.1f} s', flush=True)
    return root


def tiny_config(protocol: str, data_root: Path):
    """The protocol's tiny config, reading the class folders under `data_root`."""
    from mmengine.config import Config

    cfg = Config.fromfile(str(ROOT / TINY_CONFIGS[protocol]))
    for loader, split in (('train_dataloader', 'train'), ('val_dataloader', 'val'), ('test_dataloader', 'val')):
        cfg[loader].dataset.data_root = str(data_root / split)
        if split == 'val':
            cfg[loader].dataset.classes = str(data_root / 'train')
    return cfg


def run_tiny(protocols: List[str], data_root: Path, work_root: Path, pretrained: Optional[str] = None,
             iters: Optional[int] = None) -> List[dict]:
    ensure_synthetic_data(data_root)
    rows = []
    for protocol in protocols:
        cfg = tiny_config(protocol, data_root)
        num_classes = cfg.model.num_classes
        # untrained: the encoder as initialised (its init_cfg applied), random head
        result = learning_check(cfg, dict(top1='accuracy/top1', top5='accuracy/top5'), iters, pretrained,
                                work_dir=str(work_root / protocol))
        before, after = result['before'], result['after']
        row = dict(protocol=protocol, init='MAE' if pretrained else 'random', chance=100.0 / num_classes,
                   untrained_top1=before['top1'], untrained_top5=before['top5'],
                   trained_top1=after['top1'], trained_top5=after['top5'], iters=result['iters'],
                   batch=result['batch'], s_per_iter=result['s_per_iter'], train_s=result['train_s'],
                   threads=result['threads'])
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f'\n{"protocol":<17} {"init":<7} {"chance":>7} {"untrained top-1":>16} {"trained top-1":>14} '
          f'{"top-5":>6} {"iters":>6} {"s/iter":>7} {"train s":>8}')
    for r in rows:
        print(f'{r["protocol"]:<17} {r["init"]:<7} {r["chance"]:>7.1f} {r["untrained_top1"]:>16.1f} '
              f'{r["trained_top1"]:>14.1f} {r["trained_top5"]:>6.1f} {r["iters"]:>6} {r["s_per_iter"]:>7.3f} '
              f'{r["train_s"]:>8.0f}')
    return rows


def measure_full(config: str, batch: int, img_size: int) -> dict:
    """Parameters and one forward + backward of the config's model (call in a fresh process for its memory)."""
    import torch

    device = default_device()
    cfg, model = build_random_model(config, device)
    inputs = torch.randn(batch, 3, img_size, img_size, device=device)
    labels = torch.arange(batch, device=device) % cfg.model.num_classes
    # two steps: the first one warms up
    cost = time_training_steps(model, lambda: model(inputs, labels, mode='loss')['loss'], 2, device=device)
    return dict(config=Path(config).name, protocol=cfg.model.protocol, device=device, batch=batch,
                img_size=img_size, **parameter_counts(model), fwd_bwd_s=cost['step_s'][-1],
                peak_mem_mib=cost['peak_mem_mib'], threads=torch.get_num_threads())


def run_full(configs: List[str], batch: int, img_size: int) -> List[dict]:
    rows = []
    for config in configs:
        try:
            row = run_in_fresh_process([__file__, '_measure', config, '--batch', str(batch), '--img-size',
                                        str(img_size)], cwd=str(ROOT))
        except FreshProcessError as error:
            print(f'{config}: failed\n{error.stderr[-2000:]}', flush=True)
            continue
        rows.append(row)
        print(f'{row["config"]}: {row["protocol"]}, {row["params_m"]:.1f} M parameters '
              f'({row["trainable_m"]:.2f} M trainable), batch {batch} at {img_size}: forward + backward '
              f'{row["fwd_bwd_s"]:.2f} s, peak {row["peak_mem_mib"]:.0f} MiB ({row["device"]}, '
              f'{row["threads"]} threads)', flush=True)
    return rows


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest='command', required=True)
    tiny = sub.add_parser('tiny', help='tiny twins: accuracy before / after training')
    tiny.add_argument('--protocols', nargs='+', choices=list(TINY_CONFIGS), default=list(TINY_CONFIGS))
    tiny.add_argument('--data-root', default='data/synthetic_cls')
    tiny.add_argument('--work-dir', default=None, help='default: a temporary folder')
    tiny.add_argument('--pretrained', default=None, help='encoder checkpoint (e.g. the demo\'s tiny MAE)')
    tiny.add_argument('--iters', type=int, default=None, help="training iterations (each config's)")
    full = sub.add_parser('full', help='full-size models: parameters, memory, forward + backward')
    full.add_argument('--configs', nargs='+', default=FULL_CONFIGS)
    full.add_argument('--batch', type=int, default=8)
    full.add_argument('--img-size', type=int, default=224)
    measure = sub.add_parser('_measure')  # internal: one full-size measurement in this fresh process
    measure.add_argument('config')
    measure.add_argument('--batch', type=int, default=8)
    measure.add_argument('--img-size', type=int, default=224)
    args = parser.parse_args(argv)

    os.chdir(ROOT)
    if args.command == 'tiny':
        work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix='benchmark_cls_'))
        run_tiny(args.protocols, Path(args.data_root), work, args.pretrained, args.iters)
    elif args.command == 'full':
        run_full(args.configs, args.batch, args.img_size)
    else:
        print(json.dumps(measure_full(args.config, args.batch, args.img_size)))


if __name__ == '__main__':
    main()
