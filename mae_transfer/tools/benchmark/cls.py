"""Classification benchmarks: the tiny CPU twins (accuracy before / after training, s/iter) and the full-size
models (parameters, peak memory, one forward + backward).

    mae-transfer benchmark cls tiny                            # the three protocols, random init, 8 classes
    mae-transfer benchmark cls tiny --protocols finetune --pretrained work_dirs/demo/pretrain/epoch_12.pth
    mae-transfer benchmark cls full                            # ViT-B fine-tune and linear probe, batch 8, 224
    mae-transfer benchmark cls full --configs cls/ft_vit-large-p16_8xb128-coslr-50e_in1k-224x224.py

tiny: generates `data/synthetic_cls/` under the working directory if missing (`ensure_synthetic`: 8 shape
classes, 80 train + 25 val images each), evaluates the untrained model (encoder as initialised, random head),
trains the tiny config, evaluates again, and prints chance / untrained / trained top-1 and top-5 with the
seconds per training iteration (wall time of the training run divided by its iterations: data loading
included, evaluation not; `--iters N` shortens the runs). `--config` runs one tiny config instead of the
protocols' ones.
full: each config in a fresh process (CPU: peak RSS of that process; GPU: peak allocated), the model built as
the config says (frozen parts frozen), random weights, forward + backward on random images (`--steps`, the
last one is reported: the first warms up).
Numbers are printed, never asserted: the machine is shared.
"""
import argparse
import json
import tempfile
from pathlib import Path
from typing import List, Optional

from mae_transfer.utils.benchmarking import (build_random_model, default_device, learning_check, parameter_counts,
                                             run_task_benchmark, time_training_steps)

TINY_CONFIGS = {
    'finetune': 'cls/ft_vit-tiny-p16_1xb32-600i_synthetic-64x64.py',
    'linear_probe': 'cls/linear-probe_vit-tiny-p16_1xb64-300i_synthetic-64x64.py',
    'partial_finetune': 'cls/partial-ft-last2_vit-tiny-p16_1xb32-600i_synthetic-64x64.py',
}
FULL_CONFIGS = ['cls/ft_vit-base-p16_8xb128-coslr-100e_in1k-224x224.py',
                'cls/linear-probe_vit-base-p16_8xb2048-lars-coslr-90e_in1k-224x224.py']


def tiny_config(config: str, data_root: Path):
    """A tiny config, reading the class folders under `data_root`."""
    from mae_transfer.datasets.synthetic import ensure_synthetic
    from mae_transfer.utils.configs import load_config

    cfg = load_config(config)
    ensure_synthetic('cls', data_root, cfg=cfg)
    return cfg


def run_tiny(config: Optional[str], data_root: Optional[str], work_dir: Optional[str], iters: Optional[int] = None,
             pretrained: Optional[str] = None, protocols: Optional[List[str]] = None) -> List[dict]:
    """Learning checks of the protocols' tiny configs (or of `config` alone); one row per config."""
    from mae_transfer.datasets.synthetic import SYNTHETIC_SETS

    data_root = Path(data_root or SYNTHETIC_SETS['cls'].default_root)
    work_root = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix='benchmark_cls_'))
    chosen = {Path(config).stem: config} if config else {name: TINY_CONFIGS[name] for name in protocols or TINY_CONFIGS}
    rows = []
    for protocol, path in chosen.items():
        cfg = tiny_config(path, data_root)
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
    return rows


def print_tiny(rows: List[dict]) -> None:
    print(f'\n{"protocol":<17} {"init":<7} {"chance":>7} {"untrained top-1":>16} {"trained top-1":>14} '
          f'{"top-5":>6} {"iters":>6} {"s/iter":>7} {"train s":>8}')
    for r in rows:
        print(f'{r["protocol"]:<17} {r["init"]:<7} {r["chance"]:>7.1f} {r["untrained_top1"]:>16.1f} '
              f'{r["trained_top1"]:>14.1f} {r["trained_top5"]:>6.1f} {r["iters"]:>6} {r["s_per_iter"]:>7.3f} '
              f'{r["train_s"]:>8.0f}')


def measure_full(config: str, batch: int = 8, amp: bool = False, steps: int = 2, img_size: int = 224) -> dict:
    """Parameters and forward + backward passes of the config's model (call in a fresh process for its memory);
    the time of the last pass is reported (the first one warms up)."""
    import torch

    device = default_device()
    cfg, model = build_random_model(config, device)
    inputs = torch.randn(batch, 3, img_size, img_size, device=device)
    labels = torch.arange(batch, device=device) % cfg.model.num_classes
    cost = time_training_steps(model, lambda: model(inputs, labels, mode='loss')['loss'], steps, amp, device)
    return dict(config=Path(config).name, protocol=cfg.model.protocol, device=device, batch=batch,
                img_size=img_size, **parameter_counts(model), fwd_bwd_s=cost['step_s'][-1],
                peak_mem_mib=cost['peak_mem_mib'], threads=torch.get_num_threads())


def print_full(row: dict) -> None:
    print(f'{row["config"]}: {row["protocol"]}, {row["params_m"]:.1f} M parameters '
          f'({row["trainable_m"]:.2f} M trainable), batch {row["batch"]} at {row["img_size"]}: forward + backward '
          f'{row["fwd_bwd_s"]:.2f} s, peak {row["peak_mem_mib"]:.0f} MiB ({row["device"]}, '
          f'{row["threads"]} threads)', flush=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--protocols', nargs='+', choices=list(TINY_CONFIGS), default=list(TINY_CONFIGS),
                        help="tiny: the protocols whose tiny configs run")
    parser.add_argument('--img-size', type=int, default=224, help='full: input side')


def main(argv: Optional[List[str]] = None) -> None:
    from mae_transfer.tools.benchmark import child_command
    run_task_benchmark(child_command('cls'), __doc__, batch=8, steps=2, configs=(None, FULL_CONFIGS),
                       tiny_check=run_tiny, full_step=measure_full, print_tiny=print_tiny, print_full=print_full,
                       argv=argv, data_root='data/synthetic_cls', add_arguments=add_arguments,
                       tiny_options=('protocols',), full_options=('img_size',))
