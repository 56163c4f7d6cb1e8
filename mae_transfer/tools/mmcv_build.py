"""How mmcv 2.1.0 is compiled from its sdist: the one place that decides the build's flags and command.

Two callers use it: `tools/setup_env.py` (the project environment, with the system python before any venv
exists) and the GPU check (`mae_transfer/tools/gpu/`, on a machine without network). Both build a wheel with
pip, `--no-build-isolation` against the torch already installed. The module uses only the standard library
so that setup_env.py can load it by its path.

Why each flag:
- MMCV_WITH_OPS=1: the compiled ops (nms, roi_align, ...) that mmdet and mmseg import; 'none' sets 0 (python
  files only, about 40 s), for a machine where the ops build does not fit in the time left.
- FORCE_CUDA=1 with the CUDA ops; without them CUDA_VISIBLE_DEVICES='' because mmcv's setup.py builds CUDA
  ops whenever torch sees a GPU.
- TORCH_CUDA_ARCH_LIST: the one architecture of the GPU at hand (e.g. '9.0'): each extra one adds about as much
  nvcc work again.
- MAX_JOBS: every core (ninja's parallel compile jobs).
- --no-cache-dir: pip's wheel cache is keyed by the sdist's name only and would hand back a wheel built
  against another torch.
"""
import os
import sys
from typing import Dict, List, Mapping, Optional

MMCV_VERSION = '2.1.0'  # mmdet 3.3.0 and mmsegmentation 1.2.2 assert 2.0.0rc4 <= mmcv < 2.2.0
# mmcv's setup.py imports pkg_resources, which setuptools removed in 81; torch asks for setuptools >= 77.
BUILD_TOOLS = ('setuptools>=77,<81', 'wheel', 'ninja')
OPS_KINDS = ('cuda', 'cpu', 'none')


def build_env(base: Mapping[str, str], ops: str, cuda_arch: Optional[str] = None,
              jobs: Optional[int] = None) -> Dict[str, str]:
    """The environment of an mmcv build.

    Args:
        base: the environment to start from (os.environ).
        ops: 'cuda' (CPU and CUDA ops), 'cpu' (CPU ops only) or 'none' (no compiled ops).
        cuda_arch: TORCH_CUDA_ARCH_LIST for the CUDA ops, e.g. '9.0'; when None, the caller's own
            TORCH_CUDA_ARCH_LIST, else torch's default (the GPUs it sees).
        jobs: parallel compile jobs; every core when None.
    """
    if ops not in OPS_KINDS:
        raise ValueError(f'ops must be one of {OPS_KINDS}, got {ops!r}')
    env = dict(base, MMCV_WITH_OPS='0' if ops == 'none' else '1', MAX_JOBS=str(jobs or os.cpu_count() or 2))
    env.pop('FORCE_CUDA', None)
    if ops == 'cuda':
        env['FORCE_CUDA'] = '1'
        if cuda_arch:
            env['TORCH_CUDA_ARCH_LIST'] = cuda_arch
    else:
        env['CUDA_VISIBLE_DEVICES'] = ''  # mmcv builds CUDA ops whenever torch sees a GPU
    return env


def wheel_command(source: str, dest: str, python: str = sys.executable, offline: bool = False) -> List[str]:
    """`pip wheel` of mmcv into `dest`: from `source`, a requirement (`mmcv==2.1.0`) or an sdist file; with
    `offline`, pip reads nothing but that file (`--no-index`)."""
    command = [python, '-m', 'pip', 'wheel', '--disable-pip-version-check', '--no-deps', '--no-build-isolation',
               '--no-binary', 'mmcv', '--no-cache-dir', '-w', dest, source]
    return command[:4] + ['--no-index'] + command[4:] if offline else command


def describe(ops: str, cuda_arch: Optional[str] = None) -> str:
    """One line for logs: what a build with these flags compiles."""
    if ops == 'cuda':
        return f'mmcv {MMCV_VERSION} with CPU + CUDA ops' + (f' for sm_{cuda_arch.replace(".", "")}' if cuda_arch
                                                                  else '')
    return f'mmcv {MMCV_VERSION} with CPU ops' if ops == 'cpu' else f'mmcv {MMCV_VERSION} without compiled ops'
