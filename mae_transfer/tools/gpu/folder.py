"""The wheel folder for the lent GPU machine: only what that machine lacks, for its Python, under 60 MB.

    mae-transfer gpu-check --make-wheels DIR        # here, in the project environment, with PyPI

The lent machine (docs/gpu_check.md; the device tool's KINDS.md) runs CPython 3.12 on manylinux x86_64 with
torch 2.11.0+cu130, torchvision 0.26.0, timm, numpy, opencv-python-headless, scipy, matplotlib, pillow, pyyaml,
rich, tqdm, regex, packaging, ninja, nvcc and more, and no OpenMMLab and no network. The folder carries the
OpenMMLab packages, the pure-Python packages they need that the machine lacks, pycocotools and shapely built for
cp312, mmcv's sdist (compiled there against its torch), setuptools < 81 for that build only, this project's
wheel, `manifest.json` (names, kinds, sizes, sha256), README.txt and `gpu_check.py`, the entry that installs it.
"""
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..gpu_check import sha256  # the entry checks the folder with the same digest

WHEEL_LIMIT_MB = 60.0
TARGET_PYTHON = '3.12'  # the lent machine's python3 is 3.12.3
TARGET_ABI = 'cp312'
TARGET_PLATFORMS = ('manylinux_2_28_x86_64', 'manylinux_2_27_x86_64', 'manylinux_2_24_x86_64',
                    'manylinux_2_17_x86_64', 'manylinux2014_x86_64')
# Already on the lent machine and used by the stack: never shipped (docs/gpu_check.md lists the whole image).
ON_THE_MACHINE = ('torch', 'torchvision', 'timm', 'numpy', 'scipy', 'opencv-python-headless', 'matplotlib',
                  'pillow', 'pyyaml', 'packaging', 'rich', 'tqdm', 'regex', 'six', 'tabulate', 'onnx',
                  'onnxruntime', 'onnxscript', 'safetensors', 'huggingface-hub', 'ninja', 'wheel', 'pytest')
# What it lacks, as (requirement, kind): 'wheel' is installed, 'build' only onto the mmcv build's path,
# 'sdist' is compiled there. Found by installing the folder into the Python 3.12 proof environment, which has
# only the machine's packages: each of these was missing there (mmengine: addict, yapf (platformdirs),
# termcolor; mmdet: pycocotools, shapely, terminaltables; mmseg: prettytable (wcwidth), ftfy).
SHIPPED: Sequence[Tuple[str, str]] = (
    ('mmcv', 'sdist'),
    ('mmengine', 'wheel'), ('mmdet', 'wheel'), ('mmsegmentation', 'wheel'),
    ('pycocotools', 'wheel'), ('shapely', 'wheel'),
    ('addict', 'wheel'), ('yapf', 'wheel'), ('platformdirs', 'wheel'), ('termcolor', 'wheel'),
    ('terminaltables', 'wheel'), ('prettytable', 'wheel'), ('wcwidth', 'wheel'), ('ftfy', 'wheel'),
    ('setuptools<81', 'build'),  # mmcv's setup.py imports pkg_resources, gone from setuptools 81
)
PROJECT = 'mae_transfer'
ENTRY = Path(__file__).resolve().parents[1] / 'gpu_check.py'  # the standard-library entry, copied into the folder


def installed_version(name: str) -> Optional[str]:
    try:
        return importlib.metadata.version(re.split(r'[<>=!~]', name)[0])
    except importlib.metadata.PackageNotFoundError:
        return None


def pinned(name: str, version_of: Callable[[str], Optional[str]]) -> str:
    """`name==version` of the project environment's installed version (a requirement with a specifier, or a
    package not installed, stays as it is): the folder holds what the tests ran with."""
    if re.search(r'[<>=!~]', name):
        return name
    version = version_of(name)
    return f'{name}=={version}' if version else name


def requirements_to_fetch(version_of: Callable[[str], Optional[str]]) -> List[Tuple[str, str]]:
    """(requirement, kind) of everything the folder holds, pinned to this environment's versions."""
    return [(pinned(name, version_of), kind) for name, kind in SHIPPED]


def pip_download_command(requirement: str, kind: str, dest: Path) -> List[str]:
    """The pip command that fetches one requirement for the lent machine: binary wheels for its Python and
    platform, or mmcv's sdist (its metadata is prepared with this environment's torch and setuptools)."""
    command = [sys.executable, '-m', 'pip', 'download', '--no-deps', '-q', '-d', str(dest), requirement]
    if kind == 'sdist':
        return command + ['--no-binary', ':all:', '--no-build-isolation']
    platforms = [flag for platform in TARGET_PLATFORMS for flag in ('--platform', platform)]
    return command + ['--only-binary', ':all:', '--python-version', TARGET_PYTHON, '--implementation', 'cp',
                      '--abi', TARGET_ABI, '--abi', 'abi3', '--abi', 'none', *platforms]


def folder_sizes(paths: Sequence[Path], limit_mb: Optional[float] = None) -> Tuple[List[Tuple[str, int]], int, bool]:
    """([(file name, bytes)] largest first, total bytes, whether the total is within `limit_mb` MB, by default
    WHEEL_LIMIT_MB)."""
    limit_mb = WHEEL_LIMIT_MB if limit_mb is None else limit_mb
    sizes = sorted(((path.name, path.stat().st_size) for path in paths), key=lambda item: -item[1])
    total = sum(size for _, size in sizes)
    return sizes, total, total <= limit_mb * 1e6


def distribution_of(file_name: str) -> str:
    """The normalised distribution name of a wheel or sdist file name."""
    stem = file_name[:-len('.tar.gz')] if file_name.endswith('.tar.gz') else file_name.rsplit('.', 1)[0]
    return re.sub(r'[-_.]+', '-', re.split(r'-\d', stem, maxsplit=1)[0]).lower()


def project_root() -> Optional[Path]:
    """The checkout this module sits in (it has setup.py), or None when it runs from an installed wheel."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / 'setup.py').is_file() and (root / PROJECT / '__init__.py').is_file() else None


def write_manifest(dest: Path, files: Sequence[Path], kinds: Dict[str, str]) -> None:
    """manifest.json (the target, what the machine must have, files with kinds, sizes and sha256) and README.txt."""
    manifest = dict(
        python_tag=TARGET_ABI, python_version=TARGET_PYTHON, platforms=list(TARGET_PLATFORMS),
        expected_on_the_machine=list(ON_THE_MACHINE),
        made_with_python=sys.version.split()[0], made_at=time.strftime('%Y-%m-%d %H:%M'),
        files=[dict(name=path.name, dist=distribution_of(path.name), kind=kinds.get(path.name, 'wheel'),
                    size=path.stat().st_size, sha256=sha256(path)) for path in files])
    manifest['total_bytes'] = sum(entry['size'] for entry in manifest['files'])
    (dest / 'manifest.json').write_text(json.dumps(manifest, indent=1) + '\n')
    (dest / 'README.txt').write_text(
        f'Wheels for the GPU check (docs/gpu_check.md), made by `mae-transfer gpu-check --make-wheels`.\n'
        f'For CPython {TARGET_PYTHON} on manylinux x86_64 that already has: {", ".join(ON_THE_MACHINE)}.\n'
        f'mmcv is the sdist: it is compiled there. No network is needed.\n\n'
        f'On the GPU machine:   python3 gpu_check.py --wheels .        (or tools/gpu_check.py from a checkout)\n'
        f'Without a GPU:        python3 gpu_check.py --wheels . --cpu  (the CPU-side path)\n')


def _fetch(command: List[str], tmp: Path, kinds: Dict[str, str], kind: str, what: str) -> bool:
    before = set(tmp.iterdir())
    out = subprocess.run(command, capture_output=True, text=True)
    new = sorted(set(tmp.iterdir()) - before)
    if out.returncode or not new:
        print(f'could not fetch {what}: {out.stderr.strip()[-600:]}', file=sys.stderr)
        return False
    for path in new:
        kinds[path.name] = kind
        print(f'{path.stat().st_size / 1e6:7.2f} MB  {path.name}', flush=True)
    return True


def make_folder(dest: Path) -> int:
    """Fill `dest` with what the lent machine lacks, check it stays under the limit, write manifest and README."""
    dest.mkdir(parents=True, exist_ok=True)
    kinds: Dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix='gpu_wheels_') as tmp_name:
        tmp = Path(tmp_name)
        for requirement, kind in requirements_to_fetch(installed_version):
            if not _fetch(pip_download_command(requirement, kind, tmp), tmp, kinds, kind, requirement):
                return 1
        root = project_root()
        if root is not None:  # this package, configs included, for a machine without the checkout
            command = [sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w',
                       tmp_name, str(root)]
            if not _fetch(command, tmp, kinds, 'wheel', f'the {PROJECT} wheel'):
                return 1
        files = sorted(tmp.iterdir())
        sizes, total, fits = folder_sizes(files)
        print(f'total {total / 1e6:.2f} MB in {len(files)} files (limit {WHEEL_LIMIT_MB:g} MB)')
        if not fits:
            print(f'the folder would exceed {WHEEL_LIMIT_MB:g} MB; nothing written to {dest}', file=sys.stderr)
            return 1
        for path in files:
            shutil.copy2(path, dest / path.name)
    shutil.copy2(ENTRY, dest / 'gpu_check.py')
    write_manifest(dest, [dest / name for name, _ in sizes], kinds)
    print(f'wrote {dest} ({total / 1e6:.2f} MB of packages, manifest.json, README.txt, gpu_check.py)')
    return 0
