"""The GPU check on the machine, once the entry (`mae_transfer/tools/gpu_check.py`) has installed the folder:

1. mmcv: an installed mmcv with compiled ops is kept; otherwise it is built from the folder's sdist, with the
   CUDA ops for this GPU's architecture only if the build and the runs fit in the budget (`mmcv_step`), else
   without ops (and the configs that need them are skipped, saying why);
2. imports: mmengine, mmcv(.ops), mmdet(.models), mmseg(.models), pycocotools, cv2, scipy, timm, mae_transfer;
3. ops: mmcv.ops.nms and roi_align on the device against torchvision on the CPU;
4. runs: each full ViT-B recipe for --iters steps at its per-GPU batch under bf16 autocast (Mask R-CNN fp16,
   see `measure.autocast_dtype`): it/s, img/s, peak memory, final loss (must be finite);
5. MFU: the MAE pretraining step's bf16 model-FLOPs utilisation against the device's datasheet peak.

It exits 1 if any part FAILED, after running the others. Without a visible GPU it checks its arguments, says so
and exits 0, unless --cpu: then the same parts run on the CPU (mmcv with CPU ops, the ops check on CPU tensors,
the tiny twin of each recipe for 2 steps): the path proved offline on Python 3.12 (docs/gpu_check.md).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from mae_transfer.tools.gpu import mmcv_step

FULL_CONFIGS = {
    'pretrain': 'pretrain/mae_vit-base-p16_8xb512-amp-coslr-800e_in1k-224x224.py',
    'det': 'det/mask-rcnn_vit-base-p16_16xb4-amp-lsj-184ki_coco-1024x1024.py',
    'seg': 'seg/upernet_vit-base-p16_8xb2-160ki_ade20k-512x512.py',
    'pose': 'pose/heatmap_vit-base-p16_8xb64-210e_coco-256x192.py',
    'cls': 'cls/ft_vit-base-p16_8xb128-coslr-100e_in1k-224x224.py',
}
# The CPU-side path's configs: each recipe's tiny twin (same model code, minutes on 2 cores, not hours).
TINY_CONFIGS = {
    'pretrain': 'pretrain/mae_vit-tiny-p16_1xb32-coslr-50e_synthetic-128x128.py',
    'det': 'det/mask-rcnn_vit-tiny-p16_1xb4-lsj-600i_synthetic-128x128.py',
    'seg': 'seg/upernet_vit-tiny-p16_1xb8-200i_synthetic-128x128.py',
    'pose': 'pose/heatmap_vit-tiny-p16_1xb32-300i_synthetic-128x96.py',
    'cls': 'cls/ft_vit-tiny-p16_1xb32-600i_synthetic-64x64.py',
}
GPU_BUDGET_S = 540.0  # of a 600 s command in a 15-minute lease: start-up and install come first, and the
# summary must print before the command's limit
CPU_BUDGET_S = 3600.0  # the CPU-side path: mmcv's CPU ops alone take about 12 minutes on 2 cores
PROJECT = 'mae_transfer'


def project_root() -> Optional[Path]:
    """The checkout this module sits in, or None when it runs from the installed wheel."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / 'setup.py').is_file() and (root / PROJECT / '__init__.py').is_file() else None


def config_roots() -> List[Path]:
    """Where shipped configs may be: the checkout's configs/ or the installed wheel's package data."""
    package = Path(__file__).resolve().parents[2]
    roots = [package / 'configs', package.parent / 'configs']
    return [root for root in dict.fromkeys(roots) if root.is_dir()]


def config_exists(name: str, roots: Sequence[Path], wheels: Sequence[Path] = ()) -> bool:
    """A config file, or a shipped config's name under one of `roots` or inside the project wheel of the folder."""
    if Path(name).is_file():
        return True
    relative = name[len('configs/'):] if name.startswith('configs/') else name
    if any((root / relative).is_file() for root in roots):
        return True
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            if f'{PROJECT}/configs/{relative}' in archive.namelist():
                return True
    return False


def task_of(config: str) -> str:
    """The task of a config from its folder (det/, seg/, ...): what decides whether it needs mmcv's ops."""
    parts = Path(config[len('configs/'):] if config.startswith('configs/') else config).parts
    return next((part for part in parts if part in FULL_CONFIGS), Path(config).stem)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='gpu-check', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--wheels', type=Path, default=None,
                        help='the folder of `--make-wheels` (the entry installs it before this runs)')
    parser.add_argument('--make-wheels', type=Path, default=None, metavar='DIR',
                        help='write the wheel folder for the GPU machine into DIR (here, needs PyPI)')
    parser.add_argument('--cpu', action='store_true',
                        help='run the CPU-side path (CPU ops, tiny configs) on a machine without a GPU')
    parser.add_argument('--budget-s', type=float, default=None,
                        help=f'seconds for everything; no config starts past it (default {GPU_BUDGET_S:.0f}, '
                             f'--cpu {CPU_BUDGET_S:.0f})')
    parser.add_argument('--iters', type=int, default=None, help='training steps per config (default 20, --cpu 2)')
    parser.add_argument('--configs', nargs='+', default=list(FULL_CONFIGS),
                        help=f'task names ({", ".join(FULL_CONFIGS)}; --cpu: their tiny twins) or config files')
    parser.add_argument('--skip-mmcv-build', action='store_true',
                        help='never compile the ops: mmcv without them (GPU: built without; --cpu: as installed), '
                             'configs that need them skipped')
    parser.add_argument('--peak-tflops', type=float, default=None,
                        help="the device's peak bf16 TFLOP/s for the utilisation (default: by device name)")
    args = parser.parse_args(argv)
    args.budget_s = args.budget_s if args.budget_s is not None else (CPU_BUDGET_S if args.cpu else GPU_BUDGET_S)
    args.iters = args.iters if args.iters is not None else (2 if args.cpu else 20)
    if args.iters < 1:
        parser.error(f'--iters must be at least 1, got {args.iters}')
    if args.budget_s <= 0:
        parser.error(f'--budget-s must be positive, got {args.budget_s}')
    if args.peak_tflops is not None and args.peak_tflops <= 0:
        parser.error(f'--peak-tflops must be positive, got {args.peak_tflops}')
    if args.wheels is not None and not (args.wheels / 'manifest.json').is_file():
        problem = 'does not exist' if not args.wheels.exists() else 'has no manifest.json'
        parser.error(f'--wheels {args.wheels} {problem}: make it with `mae-transfer gpu-check --make-wheels DIR`')
    names = TINY_CONFIGS if args.cpu else FULL_CONFIGS
    args.configs = [names.get(name, name) for name in args.configs]
    wheels = sorted(args.wheels.glob(f'{PROJECT}-*.whl')) if args.wheels else []
    roots = config_roots()
    missing = [name for name in args.configs if not config_exists(name, roots, wheels)]
    if missing:
        looked = ', '.join(map(str, roots)) or 'no configs folder'
        parser.error(f'config not found: {", ".join(missing)} (looked in {looked}'
                     f'{" and the project wheel" if wheels else ""})')
    return args


class Report:
    """Each part's outcome; failures are collected, not raised, so one part's failure hides no other."""

    def __init__(self, rows: Sequence[Tuple[str, str, str]] = ()) -> None:
        self.rows: List[Tuple[str, str, str]] = list(rows)

    def add(self, part: str, status: str, detail: str = '') -> None:
        self.rows.append((part, status, detail))
        print(f'[{status}] {part}{": " + detail if detail else ""}', flush=True)

    @property
    def failed(self) -> bool:
        return any(status == 'FAILED' for _, status, _ in self.rows)

    def print_summary(self) -> None:
        print('\nsummary')
        for part, status, detail in self.rows:
            print(f'  {status:<8} {part}{"  (" + detail.splitlines()[0][:140] + ")" if detail else ""}')
        print('GPU check ' + ('FAILED' if self.failed else 'passed'))


def child_env() -> dict:
    """The children's environment: the checkout on PYTHONPATH when this module sits in one."""
    env = dict(os.environ)
    root = project_root()
    if root is not None:
        env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(root), env.get('PYTHONPATH')]))
    return env


def run_child(arguments: Sequence[str], timeout_s: float) -> Tuple[Optional[dict], str]:
    """`python -m mae_transfer.tools.gpu.measure ARGUMENTS` in a fresh process with a time limit; returns (its
    last-line JSON or None, what went wrong)."""
    command = [sys.executable, '-m', f'{PROJECT}.tools.gpu.measure', *arguments]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=max(1.0, timeout_s), env=child_env())
    except subprocess.TimeoutExpired:
        return None, f'killed after {timeout_s:.0f} s (the budget)'
    lines = out.stdout.strip().splitlines()
    if out.returncode == 0 and lines:
        try:
            return json.loads(lines[-1]), out.stderr
        except json.JSONDecodeError:
            pass
    return None, f'exit status {out.returncode}; stderr ends with:\n{out.stderr[-1500:]}'


def prepare_mmcv(args: argparse.Namespace, device: str, tasks: Sequence[str], deadline: float,
                 report: Report) -> bool:
    """mmcv in place (kept, or built from the folder); returns whether it has compiled ops."""
    if mmcv_step.has_compiled_ops():
        report.add('mmcv build', 'ok', 'mmcv with compiled ops already installed')
        return True
    if args.wheels is None:
        report.add('mmcv build', 'skipped', 'no --wheels folder: nothing to build from')
        return False
    if device == 'cpu':
        if args.skip_mmcv_build:
            report.add('mmcv build', 'skipped', '--skip-mmcv-build: mmcv as installed, without compiled ops')
            return False
        ok, detail = mmcv_step.build_from_folder(args.wheels, 'cpu', None, deadline - time.time())
        report.add('mmcv build', 'ok' if ok else 'FAILED', detail)
        return ok
    import torch

    major, minor = torch.cuda.get_device_capability()
    build, why = ((False, '--skip-mmcv-build') if args.skip_mmcv_build else
                  mmcv_step.decide_cuda_build(deadline - time.time(), os.cpu_count() or 1, tasks))
    print(f'mmcv: {why}', flush=True)
    if build:
        # a build slower than estimated is stopped while the build without ops and the runs that need no ops
        # still fit: a late CUDA build must not leave no figures at all
        fallback_s = mmcv_step.MMCV_LITE_BUILD_S + mmcv_step.runs_estimate_s(tasks, with_ops=False)
        ok, detail = mmcv_step.build_from_folder(args.wheels, 'cuda', f'{major}.{minor}',
                                                 deadline - time.time() - fallback_s)
        report.add('mmcv build', 'ok' if ok else 'FAILED', detail)
        if ok:
            return True
    ok, detail = mmcv_step.build_from_folder(args.wheels, 'none', None, deadline - time.time())
    report.add('mmcv build' if not build else 'mmcv build without ops', 'ok' if ok else 'FAILED',
               detail if build else f'{detail} ({why})')
    return False


def check_child(part: str, arguments: Sequence[str], deadline: float, report: Report) -> None:
    """A check child (imports, ops): its problems, or its summary."""
    result, err = run_child(arguments, deadline - time.time())
    if result is None:
        report.add(part, 'FAILED', err)
    else:
        report.add(part, 'FAILED' if result['problems'] else 'ok', '; '.join(result['problems']) or result['summary'])


def run_configs(args: argparse.Namespace, device: str, with_ops: bool, deadline: float, report: Report) -> List[dict]:
    rows = []
    for config in args.configs:
        if not with_ops and task_of(config) in mmcv_step.TASKS_NEEDING_MMCV_OPS:
            report.add(config, 'skipped', 'needs mmcv compiled ops, which were not built')
            continue
        if time.time() >= deadline:
            report.add(config, 'not run', f'--budget-s {args.budget_s:.0f} spent')
            continue
        result, err = run_child(['--config', config, '--iters', str(args.iters), '--device', device],
                                deadline - time.time())
        if result is None:
            report.add(config, 'FAILED', err)
            continue
        rows.append(result)
        finite = math.isfinite(result['loss'])
        report.add(config, 'ok' if finite else 'FAILED',
                   f'{result["img_per_s"]:.1f} img/s, loss {result["loss"]:.4f}' if finite else
                   f'loss after {args.iters} steps is {result["loss"]}')
    return rows


def print_table(rows: Sequence[dict]) -> None:
    print(f'\n{"config":<66} {"batch":>5} {"autocast":>8} {"it/s":>7} {"img/s":>8} {"peak MiB":>9} {"loss":>10}')
    for row in rows:
        print(f'{row["config"]:<66} {row["batch"]:>5} {row["dtype"]:>8} {row["it_per_s"]:>7.2f} '
              f'{row["img_per_s"]:>8.1f} {row["peak_mem_mib"]:>9.0f} {row["loss"]:>10.4f}')


def print_mfu(row: dict, device_name: str, peak_override: Optional[float]) -> None:
    """The MAE pretraining step's model FLOPs, achieved FLOP/s and utilisation of the device's peak."""
    from mae_transfer.utils.flops import model_flops_utilisation, peak_tflops_for

    flops, step_s = row['flops_per_step'], row['step_s']
    print(f'\nMAE pretraining step ({row["config"]}, batch {row["batch"]}, {row["dtype"]} autocast): '
          f'{flops / 1e12:.3f} TFLOP per step (forward + backward, FlopCounterMode), {step_s * 1000:.0f} ms per '
          f'step, {flops / step_s / 1e12:.3g} TFLOP/s achieved')
    found = (peak_override, '--peak-tflops') if peak_override else peak_tflops_for(device_name)
    if found is None:
        print(f'no peak bf16 figure for {device_name!r}: pass --peak-tflops to get the utilisation')
        return
    peak, label = found
    print(f'bf16 MFU {100 * model_flops_utilisation(flops, step_s, peak):.1f} % of {peak:.0f} TFLOP/s '
          f'(peak assumed for {device_name}: {label}, dense bf16; target on an H100: >= 45 %)')


def check(args: argparse.Namespace, before: Sequence[Tuple[str, str, str]] = ()) -> int:
    import torch

    start = time.time()
    deadline = start + args.budget_s
    device = 'cpu' if args.cpu else 'cuda'
    device_name = torch.cuda.get_device_name() if device == 'cuda' else 'cpu'
    print(f'GPU check on {device_name}: Python {sys.version.split()[0]}, torch {torch.__version__}, CUDA '
          f'{torch.version.cuda}, {os.cpu_count()} cores, budget {args.budget_s:.0f} s', flush=True)
    report = Report(before)
    with_ops = prepare_mmcv(args, device, [task_of(config) for config in args.configs], deadline, report)
    check_child('imports' if with_ops else 'imports (without mmcv.ops, mmdet.models, mmseg.models)',
                ['--imports'] + ([] if with_ops else ['--no-ops']), deadline, report)
    if with_ops:
        check_child(f'mmcv ops on {device}', ['--ops', device], deadline, report)
    else:
        report.add(f'mmcv ops on {device}', 'skipped', 'mmcv has no compiled ops here')
    rows = run_configs(args, device, with_ops, deadline, report)
    if rows:
        print_table(rows)
    for row in rows:
        if row.get('flops_per_step'):
            print_mfu(row, device_name, args.peak_tflops)
    print(f'\n{time.time() - start:.0f} s of the {args.budget_s:.0f} s budget used')
    report.print_summary()
    return 1 if report.failed else 0


def main(argv: Optional[Sequence[str]] = None, before: Sequence[Tuple[str, str, str]] = ()) -> int:
    """Arguments, then the check; `before` are the entry's install rows, for the summary."""
    args = parse_args(argv)
    if args.make_wheels is not None:
        from mae_transfer.tools.gpu.folder import make_folder
        return make_folder(args.make_wheels)
    import torch

    if not args.cpu and not torch.cuda.is_available():
        print('no CUDA GPU visible: nothing to check on this machine (--cpu runs the CPU-side path)')
        return 0
    return check(args, before)


if __name__ == '__main__':
    sys.exit(main())
