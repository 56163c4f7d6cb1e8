"""The GPU check's CPU-side logic: the no-GPU path, argument errors, the wheel folder's selection and size limit,
the MFU arithmetic, the device -> peak table, the mmcv-build decision and the stand-in modules. No downloads,
no model runs (those need the GPU machine; docs/gpu_check.md)."""
import importlib.util
import json
import sys
import zipfile
from pathlib import Path

import pytest

import torch

REPO = Path(__file__).resolve().parents[2]


def load_by_path():
    """The module as tools/gpu_check.py loads it on the GPU machine: by its path, without the package."""
    spec = importlib.util.spec_from_file_location('gpu_check_by_path', REPO / 'mae_transfer' / 'tools' / 'gpu_check.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gc = load_by_path()


def test_no_gpu_prints_and_returns_0(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    assert gc.main([]) == 0
    assert 'no CUDA GPU visible: nothing to check on this machine' in capsys.readouterr().out


def test_no_gpu_accepts_a_wheel_folder_and_task_names(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    (tmp_path / 'manifest.json').write_text('{}')
    assert gc.main(['--wheels', str(tmp_path), '--configs', 'pretrain', 'det', '--iters', '3']) == 0
    assert 'no CUDA GPU visible' in capsys.readouterr().out


@pytest.mark.parametrize('argv, message', [
    (['--iters', '0'], '--iters must be at least 1'),
    (['--configs', 'det', 'no/such_config.py'], 'config not found: no/such_config.py'),
    (['--wheels', '/no/such/folder'], 'does not exist'),
    (['--budget-s', '-5'], '--budget-s must be positive'),
    (['--peak-tflops', '0'], '--peak-tflops must be positive'),
])
def test_bad_arguments_exit_2_without_a_gpu(argv, message, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        gc.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_wheel_folder_without_manifest_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        gc.main(['--wheels', str(tmp_path)])
    assert 'has no manifest.json' in capsys.readouterr().err


def test_config_found_inside_the_project_wheel(tmp_path):
    wheel = tmp_path / 'mae_transfer-0.1.0-py3-none-any.whl'
    with zipfile.ZipFile(wheel, 'w') as archive:
        archive.writestr('mae_transfer/configs/det/x.py', '')
    assert gc.config_exists('det/x.py', [], [wheel])
    assert gc.config_exists('configs/det/x.py', [], [wheel])
    assert not gc.config_exists('det/y.py', [], [wheel])


def test_requirements_pinned_to_this_environment():
    versions = {'mmengine': '0.10.7', 'mmcv': '2.1.0', 'ninja': '1.13.2'}
    chosen = dict(gc.requirements_to_fetch(versions.get))
    assert chosen['mmcv==2.1.0'] == 'sdist'
    assert chosen['mmengine==0.10.7'] == 'wheel'
    assert chosen['setuptools<81'] == 'build'  # mmcv's setup.py imports pkg_resources
    assert chosen['ninja==1.13.2'] == 'build'
    assert 'mmdet' in chosen and 'mmsegmentation' in chosen and 'pycocotools' in chosen
    names = ' '.join(chosen)
    for absent in ('torch', 'timm', 'numpy', 'opencv', 'scipy'):  # on the GPU machine, or stood in for
        assert absent not in names.split() and f'{absent}==' not in names and not names.startswith(absent)
    assert 'opencv' not in names and 'scipy' not in names
    assert set(gc.STAND_INS) == {'cv2', 'scipy'}


def test_download_command_targets_the_assumed_python_and_platform(tmp_path):
    wheel = gc.pip_download_command('shapely==2.2.0', 'wheel', tmp_path)
    assert wheel[wheel.index('--python-version') + 1] == '3.11' and '--only-binary' in wheel
    assert 'manylinux2014_x86_64' in wheel and '--no-deps' in wheel
    sdist = gc.pip_download_command('mmcv==2.1.0', 'sdist', tmp_path)
    assert '--no-binary' in sdist and '--platform' not in sdist


def test_folder_size_limit_with_fake_files(tmp_path):
    small, big = tmp_path / 'a-1.0-py3-none-any.whl', tmp_path / 'b-1.0-py3-none-any.whl'
    small.write_bytes(b'x' * 1000)
    big.write_bytes(b'x' * 5000)
    sizes, total, fits = gc.folder_sizes([small, big], limit_mb=0.01)
    assert sizes[0] == (big.name, 5000) and total == 6000 and fits
    assert not gc.folder_sizes([small, big], limit_mb=0.005)[2]


def test_manifest_records_names_sizes_and_hashes(tmp_path):
    path = tmp_path / 'python_dateutil-4.0.0-py3-none-any.whl'
    path.write_bytes(b'wheel')
    gc.write_manifest(tmp_path, [path], {path.name: 'wheel'})
    manifest = json.loads((tmp_path / 'manifest.json').read_text())
    assert manifest['python_tag'] == 'cp311' and manifest['total_bytes'] == 5
    entry = manifest['files'][0]
    assert entry['dist'] == 'python-dateutil' and entry['size'] == 5 and len(entry['sha256']) == 64
    assert 'manylinux' in (tmp_path / 'README.txt').read_text()


def test_distribution_names():
    assert gc.distribution_of('mmcv-2.1.0.tar.gz') == 'mmcv'
    assert gc.distribution_of('markdown_it_py-4.3.0-py3-none-any.whl') == 'markdown-it-py'
    assert gc.distribution_of('mae_transfer-0.1.0-py3-none-any.whl') == 'mae-transfer'


def test_mfu_arithmetic():
    assert gc.model_flops_utilisation(989e12 * 0.5, 1.0, 989.0) == pytest.approx(0.5)
    assert gc.model_flops_utilisation(1e12, 0.01, 312.0) == pytest.approx(100e12 / 312e12)
    with pytest.raises(ValueError):
        gc.model_flops_utilisation(1e12, 0.0, 989.0)


@pytest.mark.parametrize('name, peak', [
    ('NVIDIA H100 80GB HBM3', 989.0), ('NVIDIA H100 PCIe', 756.0), ('NVIDIA H200', 989.0),
    ('NVIDIA A100-SXM4-80GB', 312.0), ('NVIDIA A10', 125.0), ('NVIDIA A10G', 70.0), ('NVIDIA L40S', 362.0),
    ('NVIDIA GeForce RTX 4090', 165.0), ('NVIDIA L4', 121.0),
])
def test_peak_by_device_name(name, peak):
    assert gc.peak_tflops_for(name)[0] == peak


def test_unknown_device_has_no_peak():
    assert gc.peak_tflops_for('Tesla V100-SXM2-32GB') is None
    assert gc.peak_tflops_for('cpu') is None


def test_mmcv_build_decision():
    tasks = list(gc.FULL_CONFIGS)
    build_s = gc.mmcv_build_estimate_s(16)
    runs_s = gc.runs_estimate_s(tasks, with_ops=True)
    assert gc.decide_mmcv_build(build_s + runs_s + 1, 16, tasks)[0]
    fits, why = gc.decide_mmcv_build(build_s + runs_s - 1, 16, tasks)
    assert not fits and 'skipping det, seg' in why
    assert gc.mmcv_build_estimate_s(4) > gc.mmcv_build_estimate_s(16)  # fewer cores, longer build
    assert gc.mmcv_build_estimate_s(16, archs=2) > build_s
    assert gc.runs_estimate_s(tasks, with_ops=False) < runs_s  # without ops, det does not run
    assert not gc.decide_mmcv_build(600, 1, tasks)[0]  # one core: the build alone takes an hour


def test_autocast_dtype():
    assert gc.autocast_dtype('pretrain', 'cuda') == 'bfloat16'
    assert gc.autocast_dtype('det', 'cuda') == 'float16'  # mmcv 2.1.0's nms / roi_align reject bf16
    assert gc.autocast_dtype('det', 'cpu') is None


def test_task_of_config_paths():
    assert gc.task_of(gc.FULL_CONFIGS['det']) == 'det'
    assert gc.task_of('configs/seg/x.py') == 'seg'


def test_stand_in_modules_import_and_fail_when_used():
    finder = gc._StandInFinder(['fake_cv_mod'])
    sys.meta_path.insert(0, finder)
    try:
        import fake_cv_mod
        from fake_cv_mod import IMREAD_COLOR
        from fake_cv_mod.sub import thing
        assert IMREAD_COLOR | 1 == 1 and fake_cv_mod.__version__.startswith('0.0.0')
        with pytest.raises(RuntimeError, match='stand-in'):
            thing()
    finally:
        sys.meta_path.remove(finder)
        for name in [name for name in sys.modules if name.startswith('fake_cv_mod')]:
            del sys.modules[name]


def test_installed_packages_get_no_stand_in():
    assert gc.install_stand_ins(['json']) == []
