#!/usr/bin/env python3
"""Create (or reuse) the project's virtual environment with the pinned OpenMMLab stack.

Run by `make test` / `make demo` before anything else; a second run returns in about a second because
the environment carries a stamp of everything that defines it (requirements, this script, setup.py,
the Python version). What it does on a first run, and why:

1. a venv (default `.venv` in the repository, or $MAE_TRANSFER_VENV), with build tools that can build
   mmcv 2.1.0: its setup.py imports `pkg_resources`, gone from setuptools 81, while torch 2.13 asks
   for setuptools >= 77;
2. torch + torchvision from PyPI, pinned with '===' so that a local CPU-only `+cpu` torch wheel (which
   PyPI's torchvision cannot load its ops against) is never chosen;
3. timm, mmengine, pycocotools and mmseg's undeclared imports;
4. mmcv 2.1.0 built from source against exactly that torch, CUDA ops included when a GPU and nvcc are
   present. The wheel is kept in a cache keyed by (mmcv, torch, CUDA, Python, ops) versions, never in
   pip's cache, which keys wheels by sdist name and would hand back one built against another torch;
5. mmdet, mmsegmentation, then this project in editable mode with its test extras;
6. a check that runs torchvision.ops.nms and mmcv.ops.nms and imports mmdet and mmseg. A cached mmcv
   wheel that fails the check is deleted and rebuilt once.

Only the standard library is used: this runs with the system python3 before the venv exists.
"""
import argparse
import hashlib
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STACK_FILE = REPO / 'requirements' / 'stack.txt'
# The one place that decides mmcv's build flags, shared with the GPU check; loaded by its path (standard library
# only) because this script runs before the venv, and so the package's imports, exist.
_MMCV_BUILD_PATH = REPO / 'mae_transfer' / 'tools' / 'mmcv_build.py'
_SPEC = importlib.util.spec_from_file_location('mae_transfer_mmcv_build', _MMCV_BUILD_PATH)
mmcv_build = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(mmcv_build)
# Build tools first: mmcv is built with --no-build-isolation, so these are what it builds with.
BUILD_TOOLS = ['pip>=23', *mmcv_build.BUILD_TOOLS]
TORCH_PACKAGES = ('torch', 'torchvision')
LATE_PACKAGES = ('mmdet', 'mmsegmentation')  # they need mmcv installed first
STAMP_NAME = '.mae_transfer_stamp'
DEFAULT_CACHE = Path(os.environ.get('XDG_CACHE_HOME', Path.home() / '.cache')) / 'mae_transfer'


START = time.time()


def log(message: str) -> None:
    print(f'[setup_env {time.time() - START:5.0f}s] {message}', flush=True)


def read_stack() -> dict:
    """Return {package name: requirement line} from requirements/stack.txt, in file order."""
    stack = {}
    for line in STACK_FILE.read_text().splitlines():
        line = line.split('#', 1)[0].strip()
        if line:
            name = line.split('=')[0].split('<')[0].split('>')[0].strip().lower()
            stack[name] = line
    return stack


def fingerprint(cuda_ops: bool) -> str:
    digest = hashlib.sha256()
    for path in (STACK_FILE, Path(__file__).resolve(), REPO / 'setup.py', _MMCV_BUILD_PATH):
        digest.update(path.read_bytes())
    digest.update(f'{sys.version_info[:3]} cuda_ops={cuda_ops}'.encode())
    return digest.hexdigest()[:16]


def gpu_build_wanted() -> bool:
    """Build mmcv's CUDA ops where a GPU and nvcc are present, unless MAE_TRANSFER_CUDA_OPS says otherwise."""
    forced = os.environ.get('MAE_TRANSFER_CUDA_OPS')
    if forced is not None:
        return forced == '1'
    cuda_home_nvcc = Path(os.environ.get('CUDA_HOME', '/nonexistent'), 'bin', 'nvcc')
    has_nvcc = shutil.which('nvcc') is not None or cuda_home_nvcc.exists()
    has_gpu = shutil.which('nvidia-smi') is not None and subprocess.run(
        ['nvidia-smi', '-L'], capture_output=True).returncode == 0
    return has_nvcc and has_gpu


class Venv:
    def __init__(self, path: Path):
        self.path = path
        self.python = path / 'bin' / 'python'

    def run(self, *args: str, env: dict = None, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.python), *args], env=env, check=check)

    def pip(self, *args: str, env: dict = None) -> None:
        self.run('-m', 'pip', 'install', '--disable-pip-version-check', *args, env=env)

    def output(self, code: str) -> str:
        return subprocess.run([str(self.python), '-c', code], check=True, capture_output=True,
                              text=True).stdout.strip()


def mmcv_wheel_dir(venv: Venv, mmcv_requirement: str, cuda_ops: bool, cache: Path) -> Path:
    """Cache folder for an mmcv wheel, keyed by everything the compiled ops depend on."""
    torch_version, torch_cuda = venv.output(
        'import torch; print(torch.__version__, torch.version.cuda)').split()
    mmcv_version = mmcv_requirement.split('==')[1]
    py_tag = f'cp{sys.version_info.major}{sys.version_info.minor}'
    ops = f'cuda{torch_cuda}' if cuda_ops else 'cpuops'
    key = f'mmcv{mmcv_version}-torch{torch_version}-{py_tag}-{ops}-{platform.machine()}'
    return cache / 'wheels' / key


def build_mmcv(venv: Venv, mmcv_requirement: str, cuda_ops: bool, wheel_dir: Path) -> Path:
    log(f'building {mmcv_requirement} from source against the installed torch '
        f'({"CPU + CUDA" if cuda_ops else "CPU"} ops); about 10 minutes on 2 cores, longer with CUDA ops')
    env = mmcv_build.build_env(os.environ, 'cuda' if cuda_ops else 'cpu')
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        venv.run(*mmcv_build.wheel_command(mmcv_requirement, tmp)[1:], env=env)
        built = next(Path(tmp).glob('mmcv-*.whl'))
        wheel_dir.mkdir(parents=True, exist_ok=True)
        target = wheel_dir / built.name
        shutil.move(str(built), target.with_suffix('.partial'))
        os.replace(target.with_suffix('.partial'), target)  # never leave half a wheel in the cache
    log(f'built {target.name} in {time.time() - start:.0f} s, cached in {wheel_dir}')
    return target


def install_mmcv(venv: Venv, mmcv_requirement: str, cuda_ops: bool, cache: Path, rebuild: bool) -> bool:
    """Install mmcv from the keyed cache (building it if needed); return True if the wheel was cached."""
    wheel_dir = mmcv_wheel_dir(venv, mmcv_requirement, cuda_ops, cache)
    wheels = sorted(wheel_dir.glob('mmcv-*.whl'))
    if rebuild or not wheels:
        shutil.rmtree(wheel_dir, ignore_errors=True)
        wheels = [build_mmcv(venv, mmcv_requirement, cuda_ops, wheel_dir)]
        from_cache = False
    else:
        log(f'reusing {wheels[0].name} built for this torch ({wheel_dir.name})')
        from_cache = True
    venv.pip('--force-reinstall', '--no-deps', str(wheels[0]))
    return from_cache


def verify(venv: Venv) -> bool:
    log('verifying the stack (torchvision.ops.nms, mmcv.ops.nms, import mmdet/mmseg)')
    return venv.run('-m', 'mae_transfer.utils.collect_env', '--verify', check=False).returncode == 0


def setup(venv_path: Path, cache: Path, force: bool) -> None:
    cuda_ops = gpu_build_wanted()
    venv = Venv(venv_path)
    stamp = venv_path / STAMP_NAME
    wanted = fingerprint(cuda_ops)
    if not force and stamp.exists() and stamp.read_text().strip() == wanted and venv.python.exists():
        return
    start = time.time()
    stack = read_stack()
    if venv.python.exists():
        log(f'environment {venv_path} is out of date: updating it')
        stamp.unlink(missing_ok=True)
    else:
        log(f'creating the project environment in {venv_path} (first run: ~15 minutes on 2 cores)')
        subprocess.run([sys.executable, '-m', 'venv', str(venv_path)], check=True)
    venv.pip('--upgrade', *BUILD_TOOLS)

    log('installing ' + ' '.join(stack[name] for name in TORCH_PACKAGES))
    venv.pip(*(stack[name] for name in TORCH_PACKAGES))

    early = [line for name, line in stack.items() if name not in (*TORCH_PACKAGES, 'mmcv', *LATE_PACKAGES)]
    log('installing ' + ' '.join(early))
    venv.pip(*early)

    from_cache = install_mmcv(venv, stack['mmcv'], cuda_ops, cache, rebuild=False)
    # mmcv's own dependencies, now that its wheel is in; torch is already satisfied and stays.
    venv.pip(stack['mmcv'], *(stack[name] for name in LATE_PACKAGES))

    log('installing mae_transfer (editable) with its test extras')
    venv.pip('--no-build-isolation', '-e', f'{REPO}[tests]')

    if not verify(venv):
        if not from_cache:
            sys.exit('[setup_env] the stack does not work; see the messages above.')
        log('the cached mmcv wheel fails against this torch: rebuilding it without the cache')
        install_mmcv(venv, stack['mmcv'], cuda_ops, cache, rebuild=True)
        if not verify(venv):
            sys.exit('[setup_env] the stack does not work even with a fresh mmcv build; see above.')
    stamp.write_text(wanted + '\n')
    log(f'environment ready in {time.time() - start:.0f} s: {venv_path}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--venv', type=Path,
                        default=Path(os.environ.get('MAE_TRANSFER_VENV', REPO / '.venv')),
                        help='where the environment lives (default: .venv in the repository)')
    parser.add_argument('--cache', type=Path, default=Path(os.environ.get('MAE_TRANSFER_CACHE', DEFAULT_CACHE)),
                        help='where built mmcv wheels are kept, keyed by torch version')
    parser.add_argument('--force', action='store_true', help='reinstall even if the stamp matches')
    args = parser.parse_args()
    setup(args.venv.resolve(), args.cache.resolve(), args.force)


if __name__ == '__main__':
    main()
