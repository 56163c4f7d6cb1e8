"""mmcv on the GPU machine: whether its CUDA ops fit in the time left, and building it from the folder's sdist
offline with the flags of `mae_transfer.tools.mmcv_build` (the one place that decides them).

The budget: wall time = overhead + CPU-seconds / cores, with the CPU-seconds of mmcv 2.1.0's host C++ part (77
objects) and of its 58 .cu files per target architecture. The host part is measured (docs/gpu_check.md: 658 s on
2 quiet cores, 1803 CPU-s on a loaded machine); the CUDA part is an estimate: no nvcc ran here. A GPU run prints the
real build time, from which these constants should be corrected.
"""
import glob
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterable, Optional, Sequence, Tuple

from mae_transfer.tools import mmcv_build

# Tasks whose runs need mmcv's compiled ops: Mask R-CNN runs RoIAlign and NMS; importing mmseg.models imports
# mmcv.ops, which loads mmcv._ext (found with mmcv._ext blocked: pose, cls and pretraining run without it).
TASKS_NEEDING_MMCV_OPS = ('det', 'seg')
# Rough seconds of one ViT-B config's child on an H100-class GPU with 16 cores: start-up and imports (~10 s),
# model build, 20 steps (MAE at batch 512: ~0.3 s a step at 45 % MFU), FLOP counting. Guesses until a GPU run
# prints its own: correct them from its output.
RUN_ESTIMATE_S = {'pretrain': 45.0, 'det': 60.0, 'seg': 40.0, 'pose': 30.0, 'cls': 35.0}
CHECKS_ESTIMATE_S = 35.0  # the import check and the ops check (two children)
MMCV_HOST_CPU_S = 1500.0  # the proof's CPU-ops build: 658 s on 2 quiet cores, 1803 CPU-s under load
MMCV_CUDA_CPU_S_PER_ARCH = 2400.0  # estimate: 58 .cu files at ~40 CPU-s each (nvcc, one architecture)
MMCV_BUILD_OVERHEAD_S = 40.0  # setup.py, link, wheel, install
MMCV_LITE_BUILD_S = 40.0  # MMCV_WITH_OPS=0: python files only


def build_estimate_s(cores: int, archs: int = 1) -> float:
    """Wall seconds to build mmcv's CPU + CUDA ops for `archs` architectures with `cores` compile jobs."""
    return MMCV_BUILD_OVERHEAD_S + (MMCV_HOST_CPU_S + MMCV_CUDA_CPU_S_PER_ARCH * archs) / max(1, cores)


def runs_estimate_s(tasks: Iterable[str], with_ops: bool) -> float:
    """Seconds the chosen configs' runs and the checks are expected to take."""
    chosen = [task for task in tasks if with_ops or task not in TASKS_NEEDING_MMCV_OPS]
    return sum(RUN_ESTIMATE_S.get(task, 60.0) for task in chosen) + CHECKS_ESTIMATE_S


def decide_cuda_build(budget_left_s: float, cores: int, tasks: Sequence[str], archs: int = 1) -> Tuple[bool, str]:
    """Whether to build the CUDA ops: only if the build and every chosen run still fit in the budget left;
    otherwise mmcv without ops, and the runs that need ops are skipped. Returns (build the ops, why)."""
    build = build_estimate_s(cores, archs)
    total = build + runs_estimate_s(tasks, with_ops=True)
    if total <= budget_left_s:
        return True, (f'building the CUDA ops (about {build:.0f} s on {cores} cores) and the runs (about '
                      f'{total - build:.0f} s) fit in the {budget_left_s:.0f} s left')
    skipped = ', '.join(task for task in tasks if task in TASKS_NEEDING_MMCV_OPS) or 'nothing'
    return False, (f'the CUDA ops build (about {build:.0f} s on {cores} cores) plus the runs (about '
                   f'{total - build:.0f} s) would not fit in the {budget_left_s:.0f} s left: mmcv without ops, '
                   f'skipping {skipped}')


def has_compiled_ops(timeout_s: float = 60.0) -> bool:
    """Whether the installed mmcv loads its compiled ops (a previous run built them)."""
    code = ("from mmcv.utils import ext_loader; ext_loader.load_ext('_ext', ['nms'])")
    try:
        return subprocess.run([sys.executable, '-c', code], capture_output=True, timeout=timeout_s).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _run(command: Sequence[str], timeout_s: float, env: Optional[dict] = None) -> Tuple[int, str]:
    """(return code, the output's end); 124 when killed after `timeout_s`."""
    try:
        out = subprocess.run(list(command), capture_output=True, text=True, timeout=max(1.0, timeout_s), env=env)
    except subprocess.TimeoutExpired:
        return 124, f'killed after {timeout_s:.0f} s'
    return out.returncode, (out.stdout + out.stderr).strip()[-1500:]


def build_from_folder(folder: Path, ops: str, cuda_arch: Optional[str], timeout_s: float) -> Tuple[bool, str]:
    """Build mmcv from the folder's sdist with `mmcv_build`'s flags and install it, all offline; the build tools
    (setuptools < 81) come from the folder into a directory of their own on the build's PYTHONPATH, leaving the
    environment's setuptools as it is. Returns (ok, what happened)."""
    deadline = time.time() + timeout_s
    sdists = sorted(glob.glob(str(folder / f'mmcv-{mmcv_build.MMCV_VERSION}.tar.gz')))
    if not sdists:
        return False, f'no mmcv-{mmcv_build.MMCV_VERSION}.tar.gz in {folder}'
    tools = sorted(glob.glob(str(folder / 'setuptools-*.whl')))
    tools_dir = tempfile.mkdtemp(prefix='mmcv_build_tools_')
    if tools:
        code, out = _run([sys.executable, '-m', 'pip', 'install', '--no-index', '--no-deps', '-q', '--target',
                          tools_dir, *tools], deadline - time.time())
        if code:
            return False, f'build tools: {out}'
    env = mmcv_build.build_env(os.environ, ops, cuda_arch)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [tools_dir, env.get('PYTHONPATH')]))
    wheel_dir = tempfile.mkdtemp(prefix='mmcv_wheel_')
    start = time.time()
    code, out = _run(mmcv_build.wheel_command(sdists[0], wheel_dir, offline=True), deadline - time.time(), env)
    what = mmcv_build.describe(ops, cuda_arch)
    if code:
        return False, f'{what}: {out}'
    built = time.time() - start
    # MMCV_WITH_OPS=0 names the distribution mmcv-lite (mmcv_lite-2.1.0-...whl): the same `mmcv` package
    wheels = sorted(glob.glob(os.path.join(wheel_dir, '*.whl')))
    if not wheels:
        return False, f'{what}: pip wheel made no wheel: {out}'
    code, out = _run([sys.executable, '-m', 'pip', 'install', '--no-index', '--no-deps', '--force-reinstall', '-q',
                      *wheels], deadline - time.time())
    if code:
        return False, f'installing the built wheel: {out}'
    return True, f'{what}: built in {built:.0f} s with {env["MAX_JOBS"]} jobs, installed'
