"""`gpu-check`: does the stack work on the lent CUDA GPU machine, and how fast are the full ViT-B recipes there?

    mae-transfer gpu-check --make-wheels DIR          # here, in the project environment: the folder (< 60 MB)
    python3 DIR/gpu_check.py --wheels DIR             # on the GPU machine (no network): install, build, check, run
    python3 tools/gpu_check.py --wheels DIR           # the same from a checkout
    python3 DIR/gpu_check.py --wheels DIR --cpu       # the CPU-side path on a machine without a GPU

This file is the entry and does one job: get the stack in place and hand over. It imports only the standard
library, because on the GPU machine it runs before mmengine (which `import mae_transfer` needs) is installed:
with --wheels it checks the folder (Python tag, sha256 of every file), installs the folder's wheels whose
distributions are missing (`pip install --no-index --no-deps`: the folder and the machine together are the
whole set), says which declared requirements are still unmet, and then runs
`mae_transfer.tools.gpu.device_run` (mmcv build, checks, runs, MFU), a normal module. The folder carries a copy
of this file; `mae_transfer.tools.gpu.folder` makes the folder. docs/gpu_check.md has the details.
"""
import argparse
import hashlib
import importlib
import importlib.metadata
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

PROJECT = 'mae_transfer'
# A requirement that another distribution of the same import name satisfies (mmengine asks for opencv-python;
# the machine has the headless build, which provides the same cv2).
PROVIDED_BY = {'opencv-python': ('opencv-python-headless', 'opencv-contrib-python')}
Row = Tuple[str, str, str]  # (part, status, detail), as device_run's report prints them


def normalise(name: str) -> str:
    return re.sub(r'[-_.]+', '-', name).lower()


def project_root() -> Optional[Path]:
    """The checkout this file sits in (it has setup.py), or None when it runs from the folder or a wheel."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / 'setup.py').is_file() and (root / PROJECT / '__init__.py').is_file() else None


def installed(dist: str) -> bool:
    try:
        importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return any(installed(other) for other in PROVIDED_BY.get(normalise(dist), ()))
    return True


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as stream:
        for block in iter(lambda: stream.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def folder_problems(folder: Path, manifest: dict, python_tag: str) -> List[str]:
    """What makes the folder unusable here: another Python's build, a missing or altered file."""
    problems = []
    if manifest.get('python_tag') != python_tag:
        problems.append(f'the folder was made for {manifest.get("python_tag")}, this Python is {python_tag}')
    for entry in manifest.get('files', []):
        path = folder / entry['name']
        if not path.is_file():
            problems.append(f'{entry["name"]} is missing')
        elif sha256(path) != entry['sha256']:
            problems.append(f'{entry["name"]} does not match its sha256 in manifest.json')
    return problems


def unmet_requirements(dists: Sequence[str]) -> List[str]:
    """Declared requirements of `dists` that no installed distribution provides (names only; a requirement
    whose environment marker is false here does not count)."""
    try:
        from packaging.requirements import Requirement  # on the machine; without it, marker lines are skipped
    except ImportError:
        Requirement = None
    unmet = []
    for dist in dists:
        try:
            requires = importlib.metadata.requires(dist) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for line in requires:
            if Requirement is not None:
                requirement = Requirement(line)
                if requirement.marker is not None and not requirement.marker.evaluate({'extra': ''}):
                    continue
                name = requirement.name
            elif ';' in line:
                continue
            else:
                name = re.split(r'[\s<>=!~\[(]', line.strip(), maxsplit=1)[0]
            if not installed(name):
                unmet.append(f'{dist} needs {name}')
    return sorted(set(unmet))


def install_from_folder(folder: Path) -> Tuple[List[Row], bool]:
    """Install the folder's wheels that are missing here; returns (report rows, whether it worked)."""
    start = time.time()
    manifest = json.loads((folder / 'manifest.json').read_text())
    here = f'cp{sys.version_info.major}{sys.version_info.minor}'
    problems = folder_problems(folder, manifest, here)
    if problems:
        return [('install', 'FAILED', '; '.join(problems))], False
    in_checkout = project_root() is not None  # then the checkout is the project, not the folder's wheel
    wheels = [entry for entry in manifest['files'] if entry['kind'] == 'wheel'
              and not (in_checkout and entry['dist'] == normalise(PROJECT))]
    wanted = [entry for entry in wheels if not installed(entry['dist'])]
    if wanted:
        out = subprocess.run([sys.executable, '-m', 'pip', 'install', '--no-index', '--no-deps', '-q',
                              *[str(folder / entry['name']) for entry in wanted]], capture_output=True, text=True)
        if out.returncode:
            return [('install', 'FAILED', f'pip install: {out.stderr.strip()[-800:]}')], False
        importlib.invalidate_caches()
    names = ', '.join(entry['dist'] for entry in wanted) or 'none missing'
    rows = [('install', 'ok', f'{len(wanted)} of the folder\'s {len(wheels)} wheels installed in '
                              f'{time.time() - start:.0f} s ({names})')]
    unmet = unmet_requirements([entry['dist'] for entry in wheels])
    rows.append(('requirements', 'ok' if not unmet else 'warning',
                 'every declared requirement is installed' if not unmet else '; '.join(unmet)))
    return rows, True


def parse_entry_args(argv: Sequence[str]) -> Tuple[argparse.Namespace, List[str]]:
    """The options the entry itself reads; device_run parses them all again."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('--wheels', type=Path, default=None)
    parser.add_argument('--make-wheels', type=Path, default=None)
    parser.add_argument('--cpu', action='store_true')
    parser.add_argument('-h', '--help', action='store_true')
    return parser.parse_known_args(list(argv))


def cuda_visible() -> bool:
    """Whether torch (on the machine before anything is installed) sees a GPU: without one, and without --cpu,
    nothing is installed and device_run only checks the arguments."""
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, _ = parse_entry_args(argv)
    root = project_root()
    if root is not None and str(root) not in sys.path:
        sys.path.insert(0, str(root))  # a checkout: its package, not an installed one
    if args.make_wheels is not None:
        from mae_transfer.tools.gpu.folder import make_folder
        return make_folder(args.make_wheels)
    before: List[Row] = []
    wants_run = not args.help and (args.cpu or cuda_visible())
    if args.wheels is not None and (args.wheels / 'manifest.json').is_file() and wants_run:
        print(f'installing what is missing from {args.wheels}', flush=True)
        before, ok = install_from_folder(args.wheels)
        for part, status, detail in before:
            print(f'[{status}] {part}: {detail}', flush=True)
        if not ok:
            return 1
    try:
        device_run = importlib.import_module(f'{PROJECT}.tools.gpu.device_run')
    except ImportError as error:
        print(f'the stack is not installed ({error}): pass --wheels DIR, the folder made by '
              f'`mae-transfer gpu-check --make-wheels DIR`', file=sys.stderr)
        return 1
    return device_run.main(argv, before=before)


if __name__ == '__main__':
    sys.exit(main())
