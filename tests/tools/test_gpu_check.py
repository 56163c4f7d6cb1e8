"""The GPU check's CPU-side logic, on tiny inputs with pip and the network mocked: the entry (loaded by its path,
as on a bare GPU machine), the folder for the lent machine (cp312, only what it lacks, size limit, manifest), the
offline install from it, the shared mmcv build flags, the build budget, the MFU arithmetic, the child's checks
and the runner's decisions. The whole path runs for real in the Python 3.12 proof (docs/gpu_check.md)."""
import importlib.metadata
import importlib.util
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from mae_transfer.tools import mmcv_build
from mae_transfer.tools.gpu import device_run, folder, measure, mmcv_step
from mae_transfer.utils import flops

REPO = Path(__file__).resolve().parents[2]


def load_by_path(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


entry = load_by_path(REPO / 'mae_transfer' / 'tools' / 'gpu_check.py', 'gpu_check_by_path')


def no_subprocess(*args, **kwargs):
    raise AssertionError(f'no command should run here: {args}')


# ---- the entry --------------------------------------------------------------------------------------------------


def test_entry_imports_only_the_standard_library():
    source = (REPO / 'mae_transfer' / 'tools' / 'gpu_check.py').read_text()
    top_level = [line for line in source.splitlines() if line.startswith(('import ', 'from '))]
    assert all(line.split()[1].split('.')[0] in sys.stdlib_module_names for line in top_level), top_level


def test_no_gpu_prints_and_returns_0_without_installing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(subprocess, 'run', no_subprocess)
    (tmp_path / 'manifest.json').write_text('{}')
    assert entry.main([]) == 0
    assert entry.main(['--wheels', str(tmp_path), '--configs', 'pretrain', 'det', '--iters', '3']) == 0
    assert 'no CUDA GPU visible: nothing to check on this machine' in capsys.readouterr().out


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
        entry.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_wheel_folder_without_manifest_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        entry.main(['--wheels', str(tmp_path)])
    assert 'has no manifest.json' in capsys.readouterr().err


def write_folder(path: Path, python_tag: str) -> dict:
    wheel = path / 'tiny_pkg-1.0-py3-none-any.whl'
    wheel.write_bytes(b'wheel')
    manifest = dict(python_tag=python_tag, files=[dict(name=wheel.name, dist='tiny-pkg', kind='wheel', size=5,
                                                       sha256=entry.sha256(wheel))])
    (path / 'manifest.json').write_text(json.dumps(manifest))
    return manifest


def test_folder_of_another_python_or_with_an_altered_file_is_refused(tmp_path):
    manifest = write_folder(tmp_path, 'cp312')
    assert entry.folder_problems(tmp_path, manifest, 'cp312') == []
    assert 'made for cp312, this Python is cp311' in entry.folder_problems(tmp_path, manifest, 'cp311')[0]
    (tmp_path / 'tiny_pkg-1.0-py3-none-any.whl').write_bytes(b'changed')
    assert 'does not match its sha256' in entry.folder_problems(tmp_path, manifest, 'cp312')[0]


def test_install_takes_only_the_missing_wheels_offline(tmp_path, monkeypatch):
    here = f'cp{sys.version_info.major}{sys.version_info.minor}'
    write_folder(tmp_path, here)
    calls = []
    monkeypatch.setattr(subprocess, 'run', lambda command, **kwargs: calls.append(command) or
                        subprocess.CompletedProcess(command, 0, '', ''))
    rows, ok = entry.install_from_folder(tmp_path)
    assert ok and rows[0][:2] == ('install', 'ok') and 'tiny-pkg' in rows[0][2]
    assert calls[0][-4:] == ['--no-index', '--no-deps', '-q', str(tmp_path / 'tiny_pkg-1.0-py3-none-any.whl')]
    monkeypatch.setattr(entry, 'installed', lambda dist: True)  # a second run: nothing left to install
    calls.clear()
    assert entry.install_from_folder(tmp_path)[1] and calls == []


def test_unmet_requirements_honour_markers_and_the_headless_opencv(monkeypatch):
    requires = {'mmengine': ['addict', 'opencv-python>=3', 'tomli; python_version < "3.0"', 'nope-pkg>=1']}
    monkeypatch.setattr(importlib.metadata, 'requires', lambda dist: requires[dist])
    monkeypatch.setattr(entry, 'installed', lambda name: name in ('addict', 'opencv-python'))
    assert entry.unmet_requirements(['mmengine']) == ['mmengine needs nope-pkg']
    monkeypatch.undo()
    assert entry.installed('opencv-python') == entry.installed('opencv-python-headless') or entry.installed(
        'opencv-python')


# ---- the folder -----------------------------------------------------------------------------------------------


def test_folder_targets_cp312_and_ships_only_what_the_machine_lacks(tmp_path):
    versions = {'mmengine': '0.10.7', 'mmcv': '2.1.0', 'shapely': '2.2.0'}
    chosen = dict(folder.requirements_to_fetch(versions.get))
    assert chosen['mmcv==2.1.0'] == 'sdist' and chosen['mmengine==0.10.7'] == 'wheel'
    assert chosen['setuptools<81'] == 'build'  # mmcv's setup.py imports pkg_resources
    names = {entry.normalise(requirement.split('<')[0].split('=')[0]) for requirement in chosen}
    assert {'mmdet', 'mmsegmentation', 'pycocotools', 'shapely'} <= names
    assert not names & set(folder.ON_THE_MACHINE) - {'setuptools'}  # torch, cv2, scipy, ... are there
    wheel = folder.pip_download_command('shapely==2.2.0', 'wheel', tmp_path)
    assert wheel[wheel.index('--python-version') + 1] == '3.12' and wheel[wheel.index('--abi') + 1] == 'cp312'
    assert 'manylinux2014_x86_64' in wheel and '--only-binary' in wheel and '--no-deps' in wheel
    sdist = folder.pip_download_command('mmcv==2.1.0', 'sdist', tmp_path)
    assert '--no-binary' in sdist and '--platform' not in sdist


def test_make_folder_with_pip_mocked(tmp_path, monkeypatch):
    def fake_pip(command, **kwargs):
        dest = Path(command[command.index('-d' if 'download' in command else '-w') + 1])
        name = command[-1] if 'download' not in command else command[command.index('-d') + 2]
        stem = Path(name).name.replace('<', '').replace('=', '-')
        (dest / f'{stem}-1.0-py3-none-any.whl').write_bytes(b'x' * 1000)
        return subprocess.CompletedProcess(command, 0, '', '')

    monkeypatch.setattr(subprocess, 'run', fake_pip)
    assert folder.make_folder(tmp_path / 'out') == 0
    manifest = json.loads((tmp_path / 'out' / 'manifest.json').read_text())
    assert manifest['python_tag'] == 'cp312' and 'torch' in manifest['expected_on_the_machine']
    assert len(manifest['files']) == len(folder.SHIPPED) + 1  # and the project's wheel
    assert all(len(item['sha256']) == 64 and item['size'] == 1000 for item in manifest['files'])
    assert (tmp_path / 'out' / 'gpu_check.py').read_text() == folder.ENTRY.read_text()
    assert 'python3 gpu_check.py --wheels . --cpu' in (tmp_path / 'out' / 'README.txt').read_text()
    monkeypatch.setattr(folder, 'WHEEL_LIMIT_MB', 0.001)
    assert folder.make_folder(tmp_path / 'too_big') == 1 and not list((tmp_path / 'too_big').iterdir())


def test_folder_size_limit_and_names(tmp_path):
    small, big = tmp_path / 'a-1.0-py3-none-any.whl', tmp_path / 'b-1.0-py3-none-any.whl'
    small.write_bytes(b'x' * 1000)
    big.write_bytes(b'x' * 5000)
    sizes, total, fits = folder.folder_sizes([small, big], limit_mb=0.01)
    assert sizes[0] == (big.name, 5000) and total == 6000 and fits
    assert not folder.folder_sizes([small, big], limit_mb=0.005)[2]
    assert folder.distribution_of('mmcv-2.1.0.tar.gz') == 'mmcv'
    assert folder.distribution_of('markdown_it_py-4.3.0-py3-none-any.whl') == 'markdown-it-py'


def test_config_found_inside_the_project_wheel(tmp_path):
    wheel = tmp_path / 'mae_transfer-0.1.0-py3-none-any.whl'
    with zipfile.ZipFile(wheel, 'w') as archive:
        archive.writestr('mae_transfer/configs/det/x.py', '')
    assert device_run.config_exists('det/x.py', [], [wheel])
    assert device_run.config_exists('configs/det/x.py', [], [wheel])
    assert not device_run.config_exists('det/y.py', [], [wheel])


# ---- mmcv: one place for the flags, the budget ------------------------------------------------------------------


def test_mmcv_build_flags():
    cuda = mmcv_build.build_env({'PATH': '/bin', 'FORCE_CUDA': '1'}, 'cuda', '9.0', jobs=16)
    assert (cuda['MMCV_WITH_OPS'], cuda['FORCE_CUDA'], cuda['TORCH_CUDA_ARCH_LIST'], cuda['MAX_JOBS']) == (
        '1', '1', '9.0', '16') and 'CUDA_VISIBLE_DEVICES' not in cuda
    cpu = mmcv_build.build_env({'FORCE_CUDA': '1', 'TORCH_CUDA_ARCH_LIST': '8.0'}, 'cpu')
    assert cpu['MMCV_WITH_OPS'] == '1' and cpu['CUDA_VISIBLE_DEVICES'] == '' and 'FORCE_CUDA' not in cpu
    assert mmcv_build.build_env({'TORCH_CUDA_ARCH_LIST': '8.6'}, 'cuda')['TORCH_CUDA_ARCH_LIST'] == '8.6'  # user's
    assert mmcv_build.build_env({}, 'none')['MMCV_WITH_OPS'] == '0'
    with pytest.raises(ValueError):
        mmcv_build.build_env({}, 'rocm')
    offline = mmcv_build.wheel_command('/f/mmcv-2.1.0.tar.gz', '/w', offline=True)
    assert offline[1:5] == ['-m', 'pip', 'wheel', '--no-index'] and '--no-cache-dir' in offline
    assert '--no-index' not in mmcv_build.wheel_command('mmcv==2.1.0', '/w')


def test_setup_env_builds_mmcv_with_the_shared_flags():
    setup_env = load_by_path(REPO / 'tools' / 'setup_env.py', 'setup_env_by_path')
    assert setup_env.BUILD_TOOLS[1:] == list(mmcv_build.BUILD_TOOLS)
    source = (REPO / 'tools' / 'setup_env.py').read_text()
    assert 'mmcv_build.build_env(' in source and 'mmcv_build.wheel_command(' in source
    assert "MMCV_WITH_OPS='1'" not in source  # no second copy of the flags


def test_mmcv_build_decision():
    tasks = list(device_run.FULL_CONFIGS)
    build_s = mmcv_step.build_estimate_s(16)
    runs_s = mmcv_step.runs_estimate_s(tasks, with_ops=True)
    assert mmcv_step.decide_cuda_build(build_s + runs_s + 1, 16, tasks)[0]
    fits, why = mmcv_step.decide_cuda_build(build_s + runs_s - 1, 16, tasks)
    assert not fits and 'skipping det, seg' in why
    assert build_s + runs_s < device_run.GPU_BUDGET_S  # on the lent machine's 16 cores everything fits
    assert mmcv_step.build_estimate_s(4) > build_s and mmcv_step.build_estimate_s(16, archs=2) > build_s
    assert mmcv_step.runs_estimate_s(tasks, with_ops=False) < runs_s
    assert not mmcv_step.decide_cuda_build(600, 1, tasks)[0]  # one core: the build alone takes over an hour


def test_build_from_a_folder_without_the_sdist_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(subprocess, 'run', no_subprocess)
    ok, detail = mmcv_step.build_from_folder(tmp_path, 'cpu', None, 60)
    assert not ok and 'no mmcv-2.1.0.tar.gz' in detail


@pytest.mark.parametrize('ops, wheel, with_ops', [('none', 'mmcv_lite-2.1.0-py3-none-any.whl', '0'),
                                                  ('cuda', 'mmcv-2.1.0-cp312-cp312-linux_x86_64.whl', '1')])
def test_build_from_the_folder_is_offline_with_the_shared_flags(ops, wheel, with_ops, tmp_path, monkeypatch):
    (tmp_path / 'mmcv-2.1.0.tar.gz').write_bytes(b'sdist')
    (tmp_path / 'setuptools-80.10.2-py3-none-any.whl').write_bytes(b'wheel')
    calls = []

    def fake_run(command, env=None, **kwargs):
        calls.append((command, env))
        if 'wheel' in command[:4]:
            (Path(command[command.index('-w') + 1]) / wheel).write_bytes(b'built')
        return subprocess.CompletedProcess(command, 0, '', '')

    monkeypatch.setattr(subprocess, 'run', fake_run)
    ok, detail = mmcv_step.build_from_folder(tmp_path, ops, '9.0' if ops == 'cuda' else None, 600)
    assert ok, detail
    tools, build, install = calls
    assert '--target' in tools[0] and tools[0][-1].endswith('setuptools-80.10.2-py3-none-any.whl')
    assert '--no-index' in build[0] and build[0][-1] == str(tmp_path / 'mmcv-2.1.0.tar.gz')
    assert build[1]['MMCV_WITH_OPS'] == with_ops
    assert build[1]['PYTHONPATH'].split(':')[0] == tools[0][tools[0].index('--target') + 1]
    assert install[0][-1].endswith(wheel) and '--no-index' in install[0]  # mmcv-lite's wheel is found too
    if ops == 'cuda':
        assert build[1]['TORCH_CUDA_ARCH_LIST'] == '9.0' and 'for sm_90' in detail


# ---- MFU (shared with benchmark pretrain) ----------------------------------------------------------------------


def test_mfu_arithmetic():
    assert flops.model_flops_utilisation(989e12 * 0.5, 1.0, 989.0) == pytest.approx(0.5)
    assert flops.model_flops_utilisation(1e12, 0.01, 312.0) == pytest.approx(100e12 / 312e12)
    with pytest.raises(ValueError):
        flops.model_flops_utilisation(1e12, 0.0, 989.0)


@pytest.mark.parametrize('name, peak', [
    ('NVIDIA H100 80GB HBM3', 989.0), ('NVIDIA H100 PCIe', 756.0), ('NVIDIA H200', 989.0),
    ('NVIDIA A100-SXM4-80GB', 312.0), ('NVIDIA A10', 125.0), ('NVIDIA A10G', 70.0), ('NVIDIA L40S', 362.0),
    ('NVIDIA GeForce RTX 4090', 165.0), ('NVIDIA L4', 121.0),
])
def test_peak_by_device_name(name, peak):
    assert flops.peak_tflops_for(name)[0] == peak


def test_unknown_device_has_no_peak():
    assert flops.peak_tflops_for('Tesla V100-SXM2-32GB') is None and flops.peak_tflops_for('cpu') is None


def test_step_flops_of_a_linear_layer():
    layer = torch.nn.Linear(8, 4)
    inputs = torch.randn(3, 8)
    counted = flops.count_step_flops(layer, lambda: layer(inputs).sum(), 'cpu')
    assert counted == 2 * (2 * 3 * 8 * 4)  # forward and weight gradient (the input needs none), 2 FLOPs per MAC
    assert layer.weight.grad is None


# ---- the children and the runner ------------------------------------------------------------------------------


def test_autocast_dtype_and_task_of():
    assert measure.autocast_dtype('pretrain', 'cuda') == 'bfloat16'
    assert measure.autocast_dtype('det', 'cuda') == 'float16'  # mmcv 2.1.0's nms / roi_align reject bf16
    assert measure.autocast_dtype('det', 'cpu') is None
    assert device_run.task_of(device_run.FULL_CONFIGS['det']) == 'det'
    assert device_run.task_of('configs/seg/x.py') == 'seg'
    assert set(device_run.TINY_CONFIGS) == set(device_run.FULL_CONFIGS)


def test_import_check_reports_a_missing_module():
    result = measure.import_check(['json', 'no_such_module_xyz'])
    assert result['problems'] == ["import no_such_module_xyz: ModuleNotFoundError: No module named "
                                  "'no_such_module_xyz'"]


def test_import_check_without_ops_leaves_out_what_needs_mmcv_ext(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(measure, 'import_check', lambda modules: seen.extend(modules) or dict(problems=[]))
    assert measure.main(['--imports', '--no-ops']) == 0
    assert 'mmcv' in seen and not set(measure.NEED_COMPILED_OPS) & set(seen)


def test_ops_check_on_cpu_agrees_with_torchvision():
    pytest.importorskip('mmcv.ops')
    result = measure.ops_check('cpu')
    assert result['problems'] == [] and 'of 300 boxes' in result['summary']


def test_no_stand_in_modules_anywhere():
    tools = REPO / 'mae_transfer' / 'tools'
    for path in [tools / 'gpu_check.py', *(tools / 'gpu').rglob('*.py')]:
        assert 'stand-in' not in path.read_text() and 'meta_path' not in path.read_text(), path


def test_runner_skips_ops_configs_and_fails_on_a_non_finite_loss(monkeypatch, capsys):
    args = device_run.parse_args(['--cpu', '--configs', 'pretrain', 'det', 'cls'])
    losses = {'pretrain': 1.0, 'cls': float('nan')}
    monkeypatch.setattr(device_run, 'run_child', lambda arguments, timeout: (dict(
        config=arguments[1], loss=losses[device_run.task_of(arguments[1])], img_per_s=1.0), ''))
    report = device_run.Report()
    rows = device_run.run_configs(args, 'cpu', False, float('inf'), report)
    assert [status for _, status, _ in report.rows] == ['ok', 'skipped', 'FAILED'] and len(rows) == 2
    assert report.failed
