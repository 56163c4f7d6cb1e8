"""The environment bootstrap: pins, the fingerprint that decides a rebuild, the mmcv wheel cache key."""
import importlib.util
import time

import pytest

from mae_transfer.utils import collect_env

from helpers.paths import REPO


@pytest.fixture(scope='module')
def setup_env():
    spec = importlib.util.spec_from_file_location('setup_env', REPO / 'tools' / 'setup_env.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_torch_pins_exclude_local_cpu_builds(setup_env):
    stack = setup_env.read_stack()
    assert stack['torch'].startswith('torch===') and stack['torchvision'].startswith('torchvision===')
    assert stack['mmcv'] == 'mmcv==2.1.0'
    for needed in ('timm', 'mmengine', 'mmdet', 'mmsegmentation', 'pycocotools', 'regex', 'ftfy'):
        assert needed in stack


def test_fingerprint_changes_with_requirements_and_cuda_ops(setup_env, tmp_path, monkeypatch):
    base = setup_env.fingerprint(cuda_ops=False)
    assert base == setup_env.fingerprint(cuda_ops=False)
    assert base != setup_env.fingerprint(cuda_ops=True)
    edited = tmp_path / 'stack.txt'
    edited.write_text(setup_env.STACK_FILE.read_text().replace('timm==', 'timm>='))
    monkeypatch.setattr(setup_env, 'STACK_FILE', edited)
    assert setup_env.fingerprint(cuda_ops=False) != base


class FakeVenv:
    def __init__(self, torch_version, torch_cuda):
        self.answer = f'{torch_version} {torch_cuda}'

    def output(self, code):
        return self.answer


def test_mmcv_wheel_cache_is_keyed_by_torch_build(setup_env, tmp_path):
    key = lambda venv, cuda_ops: setup_env.mmcv_wheel_dir(venv, 'mmcv==2.1.0', cuda_ops, tmp_path)  # noqa: E731
    cpu_ops = key(FakeVenv('2.13.0', '13.0'), cuda_ops=False)
    assert cpu_ops.parent == tmp_path / 'wheels'
    assert 'torch2.13.0' in cpu_ops.name and 'mmcv2.1.0' in cpu_ops.name
    others = {key(FakeVenv('2.14.0', '13.0'), False), key(FakeVenv('2.13.0+cpu', 'None'), False),
              key(FakeVenv('2.13.0', '13.0'), True), key(FakeVenv('2.13.0', '12.8'), True)}
    assert cpu_ops not in others and len(others) == 4


def test_cuda_ops_can_be_forced_either_way(setup_env, monkeypatch):
    monkeypatch.setenv('MAE_TRANSFER_CUDA_OPS', '0')
    assert setup_env.gpu_build_wanted() is False
    monkeypatch.setenv('MAE_TRANSFER_CUDA_OPS', '1')
    assert setup_env.gpu_build_wanted() is True


def test_matching_stamp_returns_at_once(setup_env, tmp_path, monkeypatch):
    monkeypatch.setenv('MAE_TRANSFER_CUDA_OPS', '0')
    venv = tmp_path / 'venv'
    (venv / 'bin').mkdir(parents=True)
    (venv / 'bin' / 'python').touch()
    (venv / setup_env.STAMP_NAME).write_text(setup_env.fingerprint(cuda_ops=False) + '\n')
    monkeypatch.setattr(setup_env.subprocess, 'run', lambda *a, **k: pytest.fail(f'ran {a}'))
    start = time.time()
    setup_env.setup(venv, tmp_path / 'cache', force=False)
    assert time.time() - start < 1.0


def test_installed_stack_passes_its_own_verification():
    assert collect_env.verify() == []
    versions = collect_env.collect_versions()
    assert versions['mmcv'] == '2.1.0' and versions['mmdet'] == '3.3.0' and versions['mmseg'] == '1.2.2'
