"""The GPU check: does the stack work on a CUDA GPU, and how fast are the full ViT-B recipes there?

    gpu_check.py --make-wheels DIR            # here, in the project environment: the folder to carry (< 60 MB)
    python DIR/gpu_check.py --wheels DIR      # on the GPU machine (no network): install, build, check, measure
    python tools/gpu_check.py --wheels DIR    # the same from a checkout

On the GPU machine it (1) installs what is missing from the wheel folder (`pip install --no-index --no-deps`),
(2) builds mmcv 2.1.0's CUDA ops from the shipped sdist for the GPU it finds only, with every core, when the time
budget allows (else mmcv without ops, and the configs that need the ops are skipped, saying why), (3) runs
mmcv.ops.nms and mmcv.ops.roi_align on CUDA and compares them with torchvision on the CPU, (4) runs each full
ViT-B config for --iters iterations at the recipe's per-GPU batch under bf16 autocast on synthetic inputs and
prints it/s, img/s, peak memory and the final loss, (5) prints the MAE pretraining step's bf16 model-FLOPs
utilisation. It exits 1 if any part failed, after running the others. Without a visible GPU it checks its
arguments, says so and exits 0. docs/gpu_check.md explains the folder, the budget and the assumptions.

Only the standard library is imported at module level: on the GPU machine this file runs before mmengine,
mmcv and this package's dependencies are installed (`tools/gpu_check.py` loads it by path for that reason).
Each measurement runs in a fresh child process (`--single CONFIG`), which imports the freshly installed stack.
"""
import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import types
import zipfile
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

# ---- what runs ---------------------------------------------------------------------------------------------
FULL_CONFIGS = {
    'pretrain': 'pretrain/mae_vit-base-p16_8xb512-amp-coslr-800e_in1k-224x224.py',
    'det': 'det/mask-rcnn_vit-base-p16_16xb4-amp-lsj-184ki_coco-1024x1024.py',
    'seg': 'seg/upernet_vit-base-p16_8xb2-160ki_ade20k-512x512.py',
    'pose': 'pose/heatmap_vit-base-p16_8xb64-210e_coco-256x192.py',
    'cls': 'cls/ft_vit-base-p16_8xb128-coslr-100e_in1k-224x224.py',
}
# Mask R-CNN runs RoIAlign and NMS; importing mmseg.models imports mmcv.ops, which needs the compiled mmcv._ext
# (seen with mmcv._ext blocked: pose, cls and pretraining run without it, UperNet does not).
TASKS_NEEDING_MMCV_OPS = ('det', 'seg')
# Rough seconds of one config's child (start-up, model build, --iters 20 steps on an H100-class GPU): what the
# budget keeps free for the runs when it decides on the mmcv build. Correct them from a real run's output.
RUN_ESTIMATE_S = {'pretrain': 60.0, 'det': 75.0, 'seg': 45.0, 'pose': 40.0, 'cls': 45.0}
OPS_CHECK_ESTIMATE_S = 25.0
# mmcv 2.1.0's CUDA ops: CPU-seconds of the host C++ part and of the .cu files per target architecture
# (estimates, see docs/gpu_check.md); wall time = overhead + CPU-seconds / cores.
MMCV_HOST_CPU_S = 1200.0
MMCV_CUDA_CPU_S_PER_ARCH = 2400.0
MMCV_BUILD_OVERHEAD_S = 40.0
MMCV_LITE_BUILD_S = 40.0  # MMCV_WITH_OPS=0: python files only

# ---- peak bf16 dense tensor FLOP/s by device name (datasheets; sparse figures halved) ------------------------
PEAK_BF16_TFLOPS: Sequence[Tuple[str, float, str]] = (
    (r'\bGH200\b', 989.0, 'GH200'),
    (r'\bH200\b', 989.0, 'H200 SXM'),
    (r'\bH100\b.*\bPCIE\b', 756.0, 'H100 PCIe'),
    (r'\bH100\b.*\bNVL\b', 835.0, 'H100 NVL'),
    (r'\bH100\b', 989.0, 'H100 SXM'),
    (r'\bH800\b', 989.0, 'H800 SXM'),
    (r'\bB200\b', 2250.0, 'B200'),
    (r'\bA100\b', 312.0, 'A100'),
    (r'\bA800\b', 312.0, 'A800'),
    (r'\bL40S\b', 362.0, 'L40S'),
    (r'\bL40\b', 181.0, 'L40'),
    (r'\bL4\b', 121.0, 'L4'),
    (r'\bA10G\b', 70.0, 'A10G'),
    (r'\bA10\b', 125.0, 'A10'),
    (r'\bRTX 4090\b', 165.0, 'RTX 4090'),
    (r'\bRTX 3090\b', 71.0, 'RTX 3090'),
    (r'\bRTX 6000 ADA\b', 364.0, 'RTX 6000 Ada'),
)

# ---- the wheel folder ----------------------------------------------------------------------------------------
WHEEL_LIMIT_MB = 60.0
TARGET_PYTHON = '3.11'  # assumed on the GPU machine: the project environment's minor version
TARGET_ABI = 'cp311'
TARGET_PLATFORMS = ('manylinux_2_28_x86_64', 'manylinux_2_27_x86_64', 'manylinux_2_24_x86_64',
                    'manylinux_2_17_x86_64', 'manylinux2014_x86_64')
# What the GPU machine lacks (it has torch, torchvision, timm and their dependencies, numpy, pip, nvcc), as
# (distribution, kind): 'wheel' is installed into the environment, 'build' only onto the mmcv build's path
# (setuptools < 81: mmcv's setup.py imports pkg_resources), 'sdist' is compiled there.
SHIPPED: Sequence[Tuple[str, str]] = (
    ('mmcv', 'sdist'),
    ('mmengine', 'wheel'), ('mmdet', 'wheel'), ('mmsegmentation', 'wheel'), ('pycocotools', 'wheel'),
    ('matplotlib', 'wheel'), ('contourpy', 'wheel'), ('cycler', 'wheel'), ('fonttools', 'wheel'),
    ('kiwisolver', 'wheel'), ('pyparsing', 'wheel'), ('python-dateutil', 'wheel'), ('six', 'wheel'),
    ('packaging', 'wheel'), ('pillow', 'wheel'), ('addict', 'wheel'), ('yapf', 'wheel'), ('platformdirs', 'wheel'),
    ('rich', 'wheel'), ('markdown-it-py', 'wheel'), ('mdurl', 'wheel'), ('pygments', 'wheel'),
    ('termcolor', 'wheel'), ('terminaltables', 'wheel'), ('tqdm', 'wheel'), ('shapely', 'wheel'),
    ('prettytable', 'wheel'), ('wcwidth', 'wheel'), ('regex', 'wheel'), ('ftfy', 'wheel'),
    ('setuptools<81', 'build'), ('wheel', 'build'), ('ninja', 'build'),
)
# Imported when mmcv / mmengine / mmdet / mmseg are imported but never used by these runs, and too big for the
# folder (opencv-python-headless 57 MB, scipy 35 MB): the children get stand-in modules when they are missing.
STAND_INS = ('cv2', 'scipy')
PROJECT = 'mae_transfer'

# ---- pure decisions (tested) -----------------------------------------------------------------------------------


def peak_tflops_for(device_name: str) -> Optional[Tuple[float, str]]:
    """(peak bf16 dense TFLOP/s, the table's label) of a CUDA device name, or None for a device not in the table."""
    for pattern, tflops, label in PEAK_BF16_TFLOPS:
        if re.search(pattern, device_name, flags=re.IGNORECASE):
            return tflops, label
    return None


def model_flops_utilisation(flops_per_step: float, step_s: float, peak_tflops: float) -> float:
    """Achieved FLOP/s (the model's FLOPs of one step over its time) as a fraction of the device's peak."""
    if step_s <= 0 or peak_tflops <= 0:
        raise ValueError(f'step time and peak must be positive, got {step_s} s and {peak_tflops} TFLOP/s')
    return flops_per_step / step_s / (peak_tflops * 1e12)


def mmcv_build_estimate_s(cores: int, archs: int = 1) -> float:
    """Wall seconds to build mmcv's CUDA ops for `archs` architectures with `cores` parallel compile jobs."""
    return MMCV_BUILD_OVERHEAD_S + (MMCV_HOST_CPU_S + MMCV_CUDA_CPU_S_PER_ARCH * archs) / max(1, cores)


def runs_estimate_s(tasks: Iterable[str], with_ops: bool) -> float:
    """Seconds the chosen configs' runs (and the ops check, when there are ops) are expected to take."""
    chosen = [task for task in tasks if with_ops or task not in TASKS_NEEDING_MMCV_OPS]
    return sum(RUN_ESTIMATE_S.get(task, 60.0) for task in chosen) + (OPS_CHECK_ESTIMATE_S if with_ops else 0.0)


def decide_mmcv_build(budget_left_s: float, cores: int, tasks: Sequence[str], archs: int = 1) -> Tuple[bool, str]:
    """Whether to build mmcv with its CUDA ops: only if the build and every chosen run still fit in the budget
    left; otherwise mmcv without ops, and the runs that need ops are skipped. Returns (build ops, why)."""
    build = mmcv_build_estimate_s(cores, archs)
    with_ops = build + runs_estimate_s(tasks, with_ops=True)
    if with_ops <= budget_left_s:
        return True, (f'building the CUDA ops (about {build:.0f} s on {cores} cores) and the runs (about '
                      f'{with_ops - build:.0f} s) fit in the {budget_left_s:.0f} s left')
    return False, (f'the CUDA ops build (about {build:.0f} s on {cores} cores) plus the runs (about '
                   f'{with_ops - build:.0f} s) would not fit in the {budget_left_s:.0f} s left: mmcv without ops, '
                   f'skipping {", ".join(t for t in tasks if t in TASKS_NEEDING_MMCV_OPS) or "nothing"}')


def pinned(name: str, version_of: Callable[[str], Optional[str]]) -> str:
    """`name==version` of the project environment's installed version (a requirement with a specifier, or a
    package not installed, stays as it is)."""
    if re.search(r'[<>=!~]', name):
        return name
    version = version_of(name)
    return f'{name}=={version}' if version else name


def requirements_to_fetch(version_of: Callable[[str], Optional[str]]) -> List[Tuple[str, str]]:
    """(requirement, kind) of everything the folder holds, pinned to this environment's versions."""
    return [(pinned(name, version_of), kind) for name, kind in SHIPPED]


def folder_sizes(paths: Sequence[Path], limit_mb: float = WHEEL_LIMIT_MB) -> Tuple[List[Tuple[str, int]], int, bool]:
    """([(file name, bytes)] largest first, total bytes, whether the total is within `limit_mb` MB)."""
    sizes = sorted(((path.name, path.stat().st_size) for path in paths), key=lambda item: -item[1])
    total = sum(size for _, size in sizes)
    return sizes, total, total <= limit_mb * 1e6


def installed_version(name: str) -> Optional[str]:
    try:
        return importlib.metadata.version(name.split('<')[0].split('=')[0])
    except importlib.metadata.PackageNotFoundError:
        return None


def distribution_of(file_name: str) -> str:
    """The normalised distribution name of a wheel or sdist file name."""
    stem = file_name[:-len('.tar.gz')] if file_name.endswith('.tar.gz') else file_name.rsplit('.', 1)[0]
    return re.sub(r'[-_.]+', '-', re.split(r'-\d', stem, maxsplit=1)[0]).lower()


# ---- making the folder (here, in the project environment) ------------------------------------------------------


def pip_download_command(requirement: str, kind: str, dest: Path) -> List[str]:
    """The pip command that fetches one requirement for the GPU machine: binary wheels for the assumed Python and
    platform, or mmcv's sdist (its metadata is prepared with this environment's torch and setuptools)."""
    command = [sys.executable, '-m', 'pip', 'download', '--no-deps', '-q', '-d', str(dest), requirement]
    if kind == 'sdist':
        return command + ['--no-binary', ':all:', '--no-build-isolation']
    platforms = [flag for platform in TARGET_PLATFORMS for flag in ('--platform', platform)]
    return command + ['--only-binary', ':all:', '--python-version', TARGET_PYTHON, '--implementation', 'cp',
                      '--abi', TARGET_ABI, '--abi', 'abi3', '--abi', 'none', *platforms]


def project_root() -> Optional[Path]:
    """The checkout this module sits in (it has setup.py), or None when it runs from a wheel or the folder."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / 'setup.py').is_file() and (root / PROJECT / '__init__.py').is_file() else None


def make_wheels(dest: Path) -> int:
    """Fill `dest` with what the GPU machine lacks, check it stays under the limit, write manifest and README."""
    dest.mkdir(parents=True, exist_ok=True)
    kinds = {}
    with tempfile.TemporaryDirectory(prefix='gpu_wheels_') as tmp:
        for requirement, kind in requirements_to_fetch(installed_version):
            before = set(Path(tmp).iterdir())
            out = subprocess.run(pip_download_command(requirement, kind, Path(tmp)), capture_output=True, text=True)
            new = sorted(set(Path(tmp).iterdir()) - before)
            if out.returncode or not new:
                print(f'pip could not fetch {requirement}: {out.stderr.strip()[-600:]}', file=sys.stderr)
                return 1
            for path in new:
                kinds[path.name] = kind
                print(f'{path.stat().st_size / 1e6:7.2f} MB  {path.name}', flush=True)
        root = project_root()
        if root is not None:  # this package, configs included, for a machine without the checkout
            before = set(Path(tmp).iterdir())
            out = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q',
                                  '-w', tmp, str(root)], capture_output=True, text=True)
            if out.returncode:
                print(f'could not build the {PROJECT} wheel: {out.stderr.strip()[-600:]}', file=sys.stderr)
                return 1
            for path in sorted(set(Path(tmp).iterdir()) - before):
                kinds[path.name] = 'wheel'
                print(f'{path.stat().st_size / 1e6:7.2f} MB  {path.name}', flush=True)
        files = sorted(Path(tmp).iterdir())
        sizes, total, fits = folder_sizes(files)
        print(f'total {total / 1e6:.2f} MB in {len(files)} files (limit {WHEEL_LIMIT_MB:.0f} MB)')
        if not fits:
            print(f'the folder would exceed {WHEEL_LIMIT_MB:.0f} MB; nothing written to {dest}', file=sys.stderr)
            return 1
        for path in files:
            shutil.copy2(path, dest / path.name)
    shutil.copy2(__file__, dest / 'gpu_check.py')
    write_manifest(dest, [dest / name for name, _ in sizes], kinds)
    print(f'wrote {dest} ({total / 1e6:.2f} MB of packages, manifest.json, README.txt, gpu_check.py)')
    return 0


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as stream:
        for block in iter(lambda: stream.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(dest: Path, files: Sequence[Path], kinds: Dict[str, str]) -> None:
    """manifest.json (files, sizes, sha256, kinds, the assumed target) and README.txt beside the packages."""
    manifest = dict(
        python_tag=TARGET_ABI, python_version=TARGET_PYTHON, platforms=list(TARGET_PLATFORMS),
        assumption=f'GPU machine: CPython {TARGET_PYTHON} on manylinux x86_64 with torch, torchvision, timm, numpy, '
                   f'pip and nvcc installed; no network',
        stand_ins=list(STAND_INS), made_with_python=sys.version.split()[0], made_at=time.strftime('%Y-%m-%d %H:%M'),
        files=[dict(name=path.name, dist=distribution_of(path.name), kind=kinds.get(path.name, 'wheel'),
                    size=path.stat().st_size, sha256=sha256(path)) for path in files])
    manifest['total_bytes'] = sum(entry['size'] for entry in manifest['files'])
    (dest / 'manifest.json').write_text(json.dumps(manifest, indent=1) + '\n')
    (dest / 'README.txt').write_text(
        f'Wheels for the GPU check (docs/gpu_check.md), made by `gpu_check.py --make-wheels`.\n'
        f'Assumes {manifest["assumption"]}.\n'
        f'Not shipped (too big, imported but unused by the check): {", ".join(STAND_INS)}; the check gives its\n'
        f'children stand-in modules for them. mmcv is the sdist: it is compiled on the GPU machine.\n\n'
        f'Run on the GPU machine:  python gpu_check.py --wheels .   (or tools/gpu_check.py from a checkout)\n')


# ---- arguments --------------------------------------------------------------------------------------------------


def config_roots() -> List[Path]:
    """Where shipped configs may be, found without importing the package (which needs mmengine)."""
    roots = []
    package = Path(__file__).resolve().parents[1]
    if package.name == PROJECT:
        roots += [package / 'configs', package.parent / 'configs']
    spec = importlib.util.find_spec(PROJECT)
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            roots += [Path(location) / 'configs', Path(location).parent / 'configs']
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
    for part in parts:
        if part in FULL_CONFIGS:
            return part
    return Path(config).stem


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--wheels', type=Path, default=None, help='the folder of `--make-wheels` to install from')
    parser.add_argument('--make-wheels', type=Path, default=None, metavar='DIR',
                        help='write the wheel folder for the GPU machine into DIR (here, needs PyPI)')
    parser.add_argument('--budget-s', type=float, default=600.0,
                        help='seconds for everything (install, mmcv build, runs); no config starts past it')
    parser.add_argument('--iters', type=int, default=20, help='training iterations per config')
    parser.add_argument('--configs', nargs='+', default=list(FULL_CONFIGS),
                        help=f'task names ({", ".join(FULL_CONFIGS)}) or config files / shipped names')
    parser.add_argument('--skip-mmcv-build', action='store_true',
                        help='never compile the CUDA ops: mmcv without ops, configs that need them skipped')
    parser.add_argument('--peak-tflops', type=float, default=None,
                        help="the device's peak bf16 TFLOP/s for the utilisation (default: by device name)")
    parser.add_argument('--device', default='cuda', help=argparse.SUPPRESS)  # 'cpu': developing the code paths
    parser.add_argument('--single', default=None, help=argparse.SUPPRESS)  # the child that measures one config
    parser.add_argument('--ops-check', action='store_true', help=argparse.SUPPRESS)  # the child of the ops check
    args = parser.parse_args(argv)
    if args.single or args.ops_check:
        return args
    if args.make_wheels is not None:
        return args
    if args.iters < 1:
        parser.error(f'--iters must be at least 1, got {args.iters}')
    if args.budget_s <= 0:
        parser.error(f'--budget-s must be positive, got {args.budget_s}')
    if args.peak_tflops is not None and args.peak_tflops <= 0:
        parser.error(f'--peak-tflops must be positive, got {args.peak_tflops}')
    if args.wheels is not None and not (args.wheels / 'manifest.json').is_file():
        problem = 'does not exist' if not args.wheels.exists() else 'has no manifest.json'
        parser.error(f'--wheels {args.wheels} {problem}: make it with `gpu_check.py --make-wheels DIR`')
    args.configs = [FULL_CONFIGS.get(name, name) for name in args.configs]
    wheels = sorted(args.wheels.glob(f'{PROJECT}-*.whl')) if args.wheels else []
    roots = config_roots()
    missing = [name for name in args.configs if not config_exists(name, roots, wheels)]
    if missing:
        looked = ', '.join(map(str, roots)) or 'no configs folder'
        parser.error(f'config not found: {", ".join(missing)} (looked in {looked}'
                     f'{" and the project wheel" if wheels else ""})')
    return args


# ---- the check's parts (parent process) --------------------------------------------------------------------------


class Report:
    """Each part's outcome; failures are collected, not raised, so one part's failure hides no other."""

    def __init__(self) -> None:
        self.rows: List[Tuple[str, str, str]] = []

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


def run_command(command: Sequence[str], timeout_s: float, env: Optional[Dict[str, str]] = None
                ) -> Tuple[int, str, str]:
    """(return code, stdout, stderr); 124 when it ran past `timeout_s` (killed)."""
    try:
        out = subprocess.run(list(command), capture_output=True, text=True, timeout=max(1.0, timeout_s), env=env)
    except subprocess.TimeoutExpired as error:
        def text(value) -> str:
            return value.decode(errors='replace') if isinstance(value, bytes) else (value or '')
        return 124, text(error.stdout), text(error.stderr) + f'\n(killed after {timeout_s:.0f} s)'
    return out.returncode, out.stdout, out.stderr


def child_env() -> Dict[str, str]:
    """The children's environment: the checkout on PYTHONPATH when this file sits in one."""
    env = dict(os.environ)
    root = project_root()
    if root is not None:
        env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(root), env.get('PYTHONPATH')]))
    return env


def run_child(arguments: Sequence[str], timeout_s: float) -> Tuple[Optional[dict], str]:
    """Run `python -m mae_transfer.tools.gpu_check ARGUMENTS` in a fresh process with a time limit (what
    `run_in_fresh_process` does, plus the limit the budget needs); returns (its last-line JSON or None, stderr)."""
    code, out, err = run_command([sys.executable, '-m', f'{PROJECT}.tools.gpu_check', *arguments], timeout_s,
                                 child_env())
    lines = out.strip().splitlines()
    if code == 0 and lines:
        try:
            return json.loads(lines[-1]), err
        except json.JSONDecodeError:
            pass
    return None, f'exit status {code}; stderr ends with:\n{err[-1500:]}'


def install_missing(wheels: Path, deadline: float, report: Report) -> Optional[Path]:
    """Install the folder's wheels whose distributions are missing (--no-deps: the folder is the whole set, and
    mmengine's opencv-python requirement is served by a stand-in); build tools go to a separate directory,
    returned for the mmcv build. None when the install failed."""
    manifest = json.loads((wheels / 'manifest.json').read_text())
    here = f'cp{sys.version_info.major}{sys.version_info.minor}'
    if manifest.get('python_tag') != here:
        report.add('install', 'FAILED', f'the folder was made for {manifest.get("python_tag")}, this is {here}: '
                                        f'make it with that Python on a machine with the project environment')
        return None
    entries = manifest['files']
    in_checkout = project_root() is not None
    wanted = [entry for entry in entries if entry['kind'] == 'wheel' and installed_version(entry['dist']) is None
              and not (entry['dist'] == PROJECT.replace('_', '-') and in_checkout)]
    if wanted:
        code, _, err = run_command([sys.executable, '-m', 'pip', 'install', '--no-index', '--no-deps', '-q',
                                    *[str(wheels / entry['name']) for entry in wanted]], deadline - time.time())
        if code:
            report.add('install', 'FAILED', f'pip install: {err.strip()[-800:]}')
            return None
    build_dir = Path(tempfile.mkdtemp(prefix='gpu_check_build_tools_'))
    tools = [str(wheels / entry['name']) for entry in entries if entry['kind'] == 'build']
    code, _, err = run_command([sys.executable, '-m', 'pip', 'install', '--no-index', '--no-deps', '-q', '--target',
                                str(build_dir), *tools], deadline - time.time())
    if code:
        report.add('install', 'FAILED', f'build tools: {err.strip()[-800:]}')
        return None
    report.add('install', 'ok', f'{len(wanted)} packages installed ({", ".join(e["dist"] for e in wanted) or "none"})'
                                f'; build tools in {build_dir}')
    return build_dir


def mmcv_ops_work(deadline: float) -> bool:
    """Whether an installed mmcv has its compiled ops (a previous run built them)."""
    code, _, _ = run_command([sys.executable, '-c', 'import mmcv.ops; from mmcv.utils import ext_loader; '
                              "ext_loader.load_ext('_ext', ['nms'])"], min(60.0, deadline - time.time()), child_env())
    return code == 0


def build_mmcv(wheels: Path, build_tools: Path, with_ops: bool, deadline: float, report: Report) -> bool:
    """pip-install mmcv from the folder's sdist, with the CUDA ops for this GPU's architecture only, every core."""
    import torch

    sdist = sorted(wheels.glob('mmcv-*.tar.gz'))
    if not sdist:
        report.add('mmcv build', 'FAILED', f'no mmcv sdist in {wheels}')
        return False
    major, minor = torch.cuda.get_device_capability()
    env = dict(os.environ, MMCV_WITH_OPS='1' if with_ops else '0', FORCE_CUDA='1' if with_ops else '0',
               TORCH_CUDA_ARCH_LIST=f'{major}.{minor}', MAX_JOBS=str(os.cpu_count() or 1),
               PYTHONPATH=os.pathsep.join(filter(None, [str(build_tools), os.environ.get('PYTHONPATH')])),
               PATH=os.pathsep.join([str(build_tools / 'bin'), os.environ.get('PATH', '')]))
    start = time.time()
    code, _, err = run_command([sys.executable, '-m', 'pip', 'install', '--no-index', '--no-deps',
                                '--no-build-isolation', '--force-reinstall', '-q', str(sdist[0])],
                               deadline - time.time(), env)
    what = f'mmcv {"with CUDA ops for sm_" + str(major) + str(minor) if with_ops else "without ops"}'
    if code:
        report.add('mmcv build', 'FAILED', f'{what}: {err.strip()[-1200:]}')
        return False
    report.add('mmcv build', 'ok', f'{what} in {time.time() - start:.0f} s ({os.cpu_count()} jobs)')
    return True


def check_ops(deadline: float, report: Report) -> None:
    result, err = run_child(['--ops-check'], deadline - time.time())
    if result is None:
        report.add('mmcv ops on CUDA', 'FAILED', err)
    elif result['problems']:
        report.add('mmcv ops on CUDA', 'FAILED', '; '.join(result['problems']))
    else:
        report.add('mmcv ops on CUDA', 'ok', result['summary'])


def print_table(rows: Sequence[dict]) -> None:
    print(f'\n{"config":<66} {"batch":>5} {"autocast":>8} {"it/s":>7} {"img/s":>8} {"peak MiB":>9} {"loss":>10}')
    for row in rows:
        print(f'{row["config"]:<66} {row["batch"]:>5} {row["dtype"]:>8} {row["it_per_s"]:>7.2f} '
              f'{row["img_per_s"]:>8.1f} {row["peak_mem_mib"]:>9.0f} {row["loss"]:>10.4f}')


def print_mfu(row: dict, device_name: str, peak_override: Optional[float]) -> None:
    """The MAE pretraining step's model FLOPs, achieved FLOP/s and utilisation of the assumed peak."""
    flops, step_s = row['flops_per_step'], row['step_s']
    achieved = flops / step_s
    print(f'\nMAE pretraining step ({row["config"]}, batch {row["batch"]}, bf16 autocast): '
          f'{flops / 1e12:.2f} TFLOP per step (forward + backward, FlopCounterMode), {step_s * 1000:.0f} ms per step,'
          f' {achieved / 1e12:.1f} TFLOP/s achieved')
    found = (peak_override, '--peak-tflops') if peak_override else peak_tflops_for(device_name)
    if found is None:
        print(f'no peak bf16 figure for {device_name!r}: pass --peak-tflops to get the utilisation')
        return
    peak, label = found
    print(f'bf16 MFU {100 * model_flops_utilisation(flops, step_s, peak):.1f} % of {peak:.0f} TFLOP/s '
          f'(peak assumed for {device_name}: {label}, dense bf16)')


def run_configs(args: argparse.Namespace, with_ops: bool, deadline: float, report: Report, device_name: str) -> None:
    rows = []
    for config in args.configs:
        task = task_of(config)
        if not with_ops and task in TASKS_NEEDING_MMCV_OPS:
            report.add(config, 'skipped', 'needs mmcv CUDA ops, which were not built')
            continue
        if time.time() >= deadline:
            report.add(config, 'not run', f'--budget-s {args.budget_s:.0f} spent')
            continue
        result, err = run_child(['--single', config, '--iters', str(args.iters), '--device', args.device],
                                deadline - time.time())
        if result is None:
            report.add(config, 'FAILED', err)
        elif not math.isfinite(result['loss']):
            rows.append(result)
            report.add(config, 'FAILED', f'loss after {args.iters} iterations is {result["loss"]}')
        else:
            rows.append(result)
            report.add(config, 'ok', f'{result["it_per_s"]:.2f} it/s, loss {result["loss"]:.4f}')
    if rows:
        print_table(rows)
    for row in rows:
        if row.get('flops_per_step'):
            print_mfu(row, device_name, args.peak_tflops)


def check(args: argparse.Namespace) -> int:
    """The check on a machine with a GPU (or, with the hidden --device cpu, the code paths on a CPU)."""
    import torch

    start = time.time()
    deadline = start + args.budget_s
    report = Report()
    device_name = torch.cuda.get_device_name() if args.device == 'cuda' else 'cpu'
    print(f'GPU check on {device_name}: torch {torch.__version__}, CUDA {torch.version.cuda}, '
          f'{os.cpu_count()} cores, budget {args.budget_s:.0f} s', flush=True)
    build_tools = install_missing(args.wheels, deadline, report) if args.wheels else None
    tasks = [task_of(config) for config in args.configs]
    with_ops = args.device == 'cuda' and mmcv_ops_work(deadline)
    if with_ops:
        report.add('mmcv build', 'ok', 'mmcv with ops already installed')
    elif args.device != 'cuda':
        report.add('mmcv build', 'skipped', 'not on a GPU')
    elif build_tools is None:
        report.add('mmcv build', 'skipped', 'no --wheels folder (or its install failed): nothing to build from')
    else:
        build_ops = False
        if args.skip_mmcv_build:
            reason = '--skip-mmcv-build'
        else:
            build_ops, reason = decide_mmcv_build(deadline - time.time(), os.cpu_count() or 1, tasks)
        print(f'mmcv: {reason}', flush=True)
        with_ops = build_mmcv(args.wheels, build_tools, build_ops, deadline, report) and build_ops
        if build_ops and not with_ops and time.time() < deadline:  # a failed ops build: still run what needs none
            build_mmcv(args.wheels, build_tools, False, deadline, report)
    if with_ops:
        check_ops(deadline, report)
    else:
        report.add('mmcv ops on CUDA', 'skipped', 'mmcv has no compiled ops here')
    run_configs(args, with_ops, deadline, report, device_name)
    print(f'\n{time.time() - start:.0f} s of the {args.budget_s:.0f} s budget used')
    report.print_summary()
    return 1 if report.failed else 0


# ---- the children (fresh processes, the installed stack) -----------------------------------------------------------


class _StandIn(types.ModuleType):
    """A module that is not installed and only imported, never used, by these runs: any attribute is a
    placeholder that fails loudly if called."""

    def __getattr__(self, name: str):
        if name.startswith('__') and name != '__version__':
            raise AttributeError(name)
        if name == '__version__':
            return '0.0.0-stand-in'
        return _Placeholder(f'{self.__name__}.{name}')


class _Placeholder(int):
    """An attribute of a stand-in module: an int (module-level constants such as cv2.INTER_LINEAR) that raises
    when called or read further."""

    def __new__(cls, name: str):
        value = super().__new__(cls, 0)
        value._name = name
        return value

    def __call__(self, *args, **kwargs):
        raise RuntimeError(f'{self._name} is a stand-in (gpu_check ships no {self._name.split(".")[0]}); '
                           f'install the real package to use it')

    def __getattr__(self, name: str):
        if name.startswith('__'):
            raise AttributeError(name)
        return _Placeholder(f'{self._name}.{name}')


class _StandInFinder:
    """Meta-path finder that serves `_StandIn` modules for the missing top-level packages `names` and their
    submodules."""

    def __init__(self, names: Sequence[str]):
        self.names = tuple(names)

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname.split('.')[0] not in self.names:
            return None
        return importlib.util.spec_from_loader(fullname, self, is_package=True)

    def create_module(self, spec):
        module = _StandIn(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module) -> None:
        pass


def install_stand_ins(names: Sequence[str] = STAND_INS) -> List[str]:
    """Serve stand-ins for whichever of `names` is not installed; returns those."""
    missing = [name for name in names if importlib.util.find_spec(name) is None]
    if missing:
        sys.meta_path.append(_StandInFinder(missing))
    return missing


def autocast_dtype(task: str, device: str) -> Optional[str]:
    """The mixed precision of a task's run: bf16, except detection, whose mmcv 2.1.0 kernels (nms reads float
    pointers, roi_align dispatches float and half) reject bf16: fp16 with loss scaling on a GPU, as
    `train.py --amp` trains it there, and fp32 on a CPU, where those kernels take float only."""
    if task == 'det':
        return 'float16' if device == 'cuda' else None
    return 'bfloat16'


class _ScaledStep:
    """`optimizer.step()` through a GradScaler, for fp16 runs (`time_training_steps` steps what it is given)."""

    def __init__(self, optimizer, scaler):
        self.optimizer, self.scaler = optimizer, scaler

    def step(self) -> None:
        self.scaler.step(self.optimizer)
        self.scaler.update()


def measure_config(config: str, iters: int, device: str) -> dict:
    """`iters` training steps (forward, backward, AdamW) of a config at its per-GPU batch under autocast
    (`autocast_dtype`): it/s and img/s after the first (warm-up) step, peak memory, the last loss, and for
    pretraining the model FLOPs of one step."""
    import torch

    from mae_transfer.utils.benchmarking import (build_random_model, median, peak_memory_mib,
                                                 synthetic_training_loss, time_training_steps)
    from mae_transfer.utils.configs import config_name, config_task

    stand_ins = install_stand_ins()
    cfg, model = build_random_model(config, device)
    task = config_task(cfg)
    batch = cfg.get('train_dataloader', {}).get('batch_size', 2)  # the recipe's per-GPU batch (smoke configs: 2)
    compute = synthetic_training_loss(cfg, model, batch, device)
    dtype_name = autocast_dtype(task, device)
    dtype = getattr(torch, dtype_name) if dtype_name else None
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    scaler = torch.amp.GradScaler(device) if dtype_name == 'float16' else None
    losses = []

    def compute_loss():
        loss = compute()
        losses.append(loss.detach())
        return scaler.scale(loss) if scaler is not None else loss

    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    cost = time_training_steps(model, compute_loss, iters, device=device, dtype=dtype,
                               optimizer=_ScaledStep(optimizer, scaler) if scaler is not None else optimizer)
    timed = cost['step_s'][1:] or cost['step_s']
    row = dict(config=config_name(config), task=task, batch=batch, iters=iters, device=device,
               dtype=dtype_name or 'float32', it_per_s=len(timed) / sum(timed),
               img_per_s=batch * len(timed) / sum(timed), step_s=median(timed),
               peak_mem_mib=peak_memory_mib(device), loss=float(losses[-1].float()), stand_ins=stand_ins)
    if task == 'pretrain':
        row['flops_per_step'] = count_step_flops(model, compute, device)
    return row


def count_step_flops(model, compute: Callable, device: str) -> float:
    """Model FLOPs of one forward + backward under bf16 autocast (matmuls and convolutions, as FlopCounterMode
    counts them); the optimizer's elementwise work is not model FLOPs."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            loss = compute()
        loss.backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def ops_check() -> dict:
    """mmcv.ops.nms and mmcv.ops.roi_align on CUDA against torchvision on the CPU."""
    import torch
    import torchvision

    from mmcv.ops import nms, roi_align

    problems = []
    generator = torch.Generator().manual_seed(0)
    xy = torch.rand(300, 2, generator=generator) * 200
    boxes = torch.cat([xy, xy + 10 + torch.rand(300, 2, generator=generator) * 60], dim=1)
    scores = torch.rand(300, generator=generator)
    _, keep = nms(boxes.cuda(), scores.cuda(), iou_threshold=0.5)
    expected = torchvision.ops.nms(boxes, scores, 0.5)
    if keep.cpu().tolist() != expected.tolist():
        problems.append(f'nms keeps {keep.numel()} boxes on CUDA, torchvision {expected.numel()} on the CPU')
    features = torch.rand(2, 16, 64, 64, generator=generator)
    rois = torch.cat([torch.tensor([[0.0], [1.0]]).repeat(20, 1), boxes[:40]], dim=1)
    got = roi_align(features.cuda(), rois.cuda(), (7, 7), 0.25, 2, 'avg', True).cpu()
    want = torchvision.ops.roi_align(features, rois, (7, 7), 0.25, 2, aligned=True)
    difference = float((got - want).abs().max())
    if difference > 1e-4:
        problems.append(f'roi_align differs from torchvision by up to {difference:.2e}')
    return dict(problems=problems, summary=f'nms keeps the same {expected.numel()} of 300 boxes as torchvision; '
                                           f'roi_align within {difference:.1e} of torchvision')


# ---- entry point ----------------------------------------------------------------------------------------------------


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.single:
        print(json.dumps(measure_config(args.single, args.iters, args.device)))
        return 0
    if args.ops_check:
        install_stand_ins()
        print(json.dumps(ops_check()))
        return 0
    if args.make_wheels is not None:
        return make_wheels(args.make_wheels)
    import torch

    if args.device == 'cuda' and not torch.cuda.is_available():
        print('no CUDA GPU visible: nothing to check on this machine')
        return 0
    return check(args)


if __name__ == '__main__':
    sys.exit(main())
