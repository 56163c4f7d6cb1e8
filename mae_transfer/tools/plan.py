"""Plan a config's training for your GPUs from measured memory: per-device batch, accumulation, with_cp and lr.

    mae-transfer plan pretrain/mae_vit-base-p16_8xb512-amp-coslr-800e_in1k-224x224.py --gpus 4 --gpu-memory 24GB
    mae-transfer plan det/mask-rcnn_vit-base-p16_16xb4-amp-lsj-184ki_coco-1024x1024.py --gpus 2 --gpu-memory 16GB
    mae-transfer plan CONFIG --gpus 1 --gpu-memory 12GB --apply work_dirs/plans/mine.py   # a derived config
    mae-transfer plan CONFIG --gpus 8 --gpu-memory 80GB --check-batch 6                    # predicted vs measured

It measures, on the device it runs on, the peak memory of one real training step of the config's model (its own
optimizer wrapper, a synthetic batch at the training input size) at two small per-device batch sizes, without
and with activation checkpointing, each in a fresh process (from batch 2 when the model has BatchNorm in training
mode: it needs more than one value per channel). On a GPU the memory is
`torch.cuda.max_memory_allocated`; on a CPU it is the peak RSS minus the process's RSS before the model was
built. It fits memory = fixed + per sample x batch (with 3 or more batches it prints the residual spread of the
line) and prints the plan that keeps the recipe's effective batch and, in iterations, its schedule of optimizer
updates (docs/planning.md). Measure on the kind of device you will train on: CPU kernels keep other buffers than CUDA's.
"""
import argparse
import json
import os
import copy
import resource
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from mmengine.config import Config, DictAction

import mae_transfer  # noqa: F401  (registries)
from mae_transfer.tools import load_config_or_exit
from mae_transfer.utils.config_checks import check_config_values
from mae_transfer.utils.configs import CFG_OPTIONS_RULE, config_task, merge_cfg_options, resolve_config
from mae_transfer.utils.memory_plan import MemoryFit, Recipe, describe, make_plan, parse_memory

#: the smallest batch a model with BatchNorm in training mode runs (one sample: one value per channel after a
#: global pooling, "Expected more than 1 value per channel when training")
BATCHNORM_MIN_BATCH = 2


class NeedsLargerBatch(Exception):
    """The measured model cannot train at the batch asked (BatchNorm in training mode at batch 1)."""

    def __init__(self, min_batch: int):
        super().__init__(f'the model needs a batch of at least {min_batch}')
        self.min_batch = min_batch


def cp_key(task: str) -> str:
    """Where a config's model keeps with_cp: the MAE pretrainer itself, else its backbone."""
    return 'model.with_cp' if task == 'pretrain' else 'model.backbone.with_cp'


def _rss_mib() -> float:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def measure_step(config: str, batch: int, with_cp: bool, device: str, options: Dict) -> Dict[str, float]:
    """Peak memory (MiB) of one training step of `config` at `batch`, in this process (call it in a fresh one)."""
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope

    from mae_transfer.tools.train import amp_on_cpu
    from mae_transfer.utils.benchmarking import build_random_model, synthetic_training_loss

    cfg = load_config_or_exit(config)
    merge_cfg_options(cfg, options)
    task = config_task(cfg)
    cfg.merge_from_dict({cp_key(task): with_cp})
    if device == 'cpu':
        amp_on_cpu(cfg)
    baseline = 0.0 if device.startswith('cuda') else _rss_mib()  # the interpreter and the libraries
    _, model = build_random_model(cfg, device)  # random weights: the memory does not depend on them
    if batch < BATCHNORM_MIN_BATCH and has_training_batchnorm(model):
        return dict(batch=batch, with_cp=with_cp, min_batch=BATCHNORM_MIN_BATCH)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
        compute_loss = synthetic_training_loss(cfg, model, batch, device)
        if device.startswith('cuda'):
            torch.cuda.reset_peak_memory_stats()
        for _ in range(2):  # the second step is the steady state (optimizer state exists from the first)
            with optim_wrapper.optim_context(model):
                loss = compute_loss()
            optim_wrapper.update_params(loss)
    if device.startswith('cuda'):
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return dict(batch=batch, with_cp=with_cp, memory_mib=peak - baseline, peak_mib=peak, baseline_mib=baseline,
                loss=float(loss.detach()))


def has_training_batchnorm(model) -> bool:
    """Whether a BatchNorm layer (any dimension, SyncBN too) is in training mode once the model trains."""
    from torch.nn.modules.batchnorm import _BatchNorm
    return any(isinstance(module, _BatchNorm) and module.training for module in model.modules())


def measure_in_fresh_process(config: str, batch: int, with_cp: bool, device: str, options: List[str]) -> float:
    """The step memory (MiB) measured in a new interpreter.

    Raises:
        NeedsLargerBatch: the model has BatchNorm in training mode and `batch` is 1.
    """
    from mae_transfer.utils.benchmarking import run_in_fresh_process
    argv = ['-m', 'mae_transfer.tools.plan', config, '--single', '--batch', str(batch), '--device', device]
    argv += ['--with-cp'] if with_cp else []
    argv += ['--cfg-options', *options] if options else []
    result = run_in_fresh_process(argv)
    if 'min_batch' in result:
        raise NeedsLargerBatch(int(result['min_batch']))
    return float(result['memory_mib'])


def measure_line(config: str, batches: Sequence[int], with_cp: bool, device: str,
                 options: List[str]) -> Dict[int, float]:
    """{batch: MiB} at `batches`, each in a fresh process; raises NeedsLargerBatch before measuring the rest."""
    return {batch: measure_in_fresh_process(config, batch, with_cp, device, options) for batch in batches}


def shifted_batches(batches: Sequence[int], min_batch: int) -> List[int]:
    """`batches` moved up so that the smallest is `min_batch`, their spacing kept: (1, 2) -> (2, 3)."""
    shift = max(0, min_batch - min(batches))
    return [batch + shift for batch in batches]


def write_derived_config(path: Path, config: str, options: Dict, cfg: Optional[Config] = None) -> Path:
    """A config that holds only the plan's differences from `config` (mmengine merges `_base_`).

    A key with a list index (`param_scheduler.0.end`) rewrites its whole top-level list, taken from `cfg` (or
    `config`): a child config's list replaces its base's list.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f'# {path.name}: written by `mae-transfer plan`; the plan\'s differences from the recipe',
             f'_base_ = {str(Path(resolve_config(config)).resolve())!r}']
    indexed = {key.split('.')[0] for key in options if any(part.isdigit() for part in key.split('.'))}
    if indexed and cfg is None:
        cfg = load_config_or_exit(config)
    nested: Dict = {name: copy.deepcopy(cfg.to_dict()[name]) for name in sorted(indexed)}
    for key, value in options.items():
        node: Any = nested
        *parents, leaf = key.split('.')
        for name in parents:
            node = node[int(name)] if isinstance(node, list) else node.setdefault(name, {})
        if isinstance(node, list):
            node[int(leaf)] = value
        else:
            node[leaf] = value
    for name, value in nested.items():
        lines.append(f'{name} = {_python(value)}')
    path.write_text('\n'.join(lines) + '\n')
    return path


def _python(value) -> str:
    if isinstance(value, dict):
        return 'dict(' + ', '.join(f'{k}={_python(v)}' for k, v in value.items()) + ')'
    if isinstance(value, list):
        return '[' + ', '.join(_python(v) for v in value) + ']'
    if isinstance(value, tuple):
        return '(' + ', '.join(_python(v) for v in value) + (',)' if len(value) == 1 else ')')
    return repr(value)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Plan per-device batch, accumulation, with_cp and lr for your GPUs',
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('config', help='config file, or a shipped config relative to configs/')
    parser.add_argument('--gpus', type=int, default=1, help='GPUs of the run')
    parser.add_argument('--gpu-memory', default='24GB', help='memory of one GPU, e.g. 24GB, 80GB, 16000MB')
    parser.add_argument('--batches', type=int, nargs='+', default=[1, 2], metavar='B',
                        help='the per-device batch sizes measured (two or more; with three or more the fit prints '
                             'its residual spread)')
    parser.add_argument('--check-batch', type=int, default=None,
                        help='also measure this batch (without with_cp) and print predicted vs measured')
    parser.add_argument('--margin', type=float, default=0.1, help='fraction of the GPU memory left free')
    parser.add_argument('--apply', nargs='?', const='', default=None, metavar='FILE',
                        help='write the plan as a derived config (default work_dirs/plans/<config>_<N>x<mem>.py)')
    parser.add_argument('--device', default=None, help="where to measure: 'cuda' when a GPU is visible, else 'cpu'")
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help=f'override config entries before measuring; {CFG_OPTIONS_RULE}')
    parser.add_argument('--single', action='store_true', help=argparse.SUPPRESS)  # the fresh child process
    parser.add_argument('--batch', type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument('--with-cp', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.gpus < 1 or min(args.batches) < 1 or len(set(args.batches)) < 2:
        parser.error('--gpus and --batches must be positive, with two or more different batches')
    args.batches = sorted(set(args.batches))
    if not 0 <= args.margin < 1:
        parser.error('--margin is a fraction in [0, 1)')
    return args


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    import torch
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    if args.single:
        parsed = {} if not args.cfg_options else _parse_options(args.cfg_options)
        print(json.dumps(measure_step(args.config, args.batch, args.with_cp, device, parsed)))
        return
    try:
        capacity = parse_memory(args.gpu_memory)
    except ValueError as error:
        raise SystemExit(f'--gpu-memory: {error}') from error
    cfg = load_config_or_exit(args.config)
    merge_cfg_options(cfg, _parse_options(args.cfg_options))
    check_config_values(cfg, args.config)
    task = config_task(cfg)
    batches, min_batch = list(args.batches), 1
    print(f'measuring one training step of {args.config} on {device} at per-device batch '
          f'{", ".join(map(str, batches))}, with_cp off and on (fresh processes)', flush=True)
    fits = {}
    for with_cp in (False, True):
        try:
            points = measure_line(args.config, batches, with_cp, device, args.cfg_options)
        except NeedsLargerBatch as needs:
            min_batch, batches = needs.min_batch, shifted_batches(batches, needs.min_batch)
            print(f'  the model has BatchNorm in training mode, which needs more than one value per channel: '
                  f'measuring at batch {", ".join(map(str, batches))} instead', flush=True)
            points = measure_line(args.config, batches, with_cp, device, args.cfg_options)
        fits[with_cp] = MemoryFit.fit(points)
        print(f'  with_cp {"on " if with_cp else "off"}: ' + ', '.join(
            f'batch {batch}: {mib / 1024:.3f} GiB' for batch, mib in points.items())
            + f'; {fits[with_cp].describe_spread()}', flush=True)
    plan = make_plan(Recipe.from_config(cfg), fits, args.gpus, capacity, args.margin, min_batch=min_batch, cfg=cfg)
    print(describe(plan, fits, cp_key(task)))
    if args.check_batch:
        if args.check_batch < min_batch:
            raise SystemExit(f'--check-batch {args.check_batch}: the model has BatchNorm in training mode and '
                             f'trains from batch {min_batch}')
        measured = measure_in_fresh_process(args.config, args.check_batch, False, device, args.cfg_options)
        predicted = fits[False].predict(args.check_batch)
        print(f'check at batch {args.check_batch} (with_cp off): predicted {predicted / 1024:.3f} GiB, measured '
              f'{measured / 1024:.3f} GiB, error {100 * (predicted - measured) / measured:+.1f} %')
    if args.apply is not None and plan.fits:
        stem = Path(args.config).stem
        target = Path(args.apply or f'work_dirs/plans/{stem}_{args.gpus}x{args.gpu_memory}.py')
        print(f'derived config: {write_derived_config(target, args.config, plan.cfg_options(cp_key(task)), cfg)}')
    if not plan.fits:
        sys.exit(1)


def _parse_options(items: List[str]) -> Dict:
    """`key=value` strings as mmengine's DictAction reads them."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction, default={})
    return parser.parse_args(['--o', *items]).o if items else {}


if __name__ == '__main__':
    from mae_transfer.utils.user_errors import run_command
    run_command(main, 'mae-transfer plan')
