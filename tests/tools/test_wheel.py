"""The package stands alone: a wheel built from this checkout, installed into a fresh virtual environment
outside it (the heavy stack of the project environment visible, the checkout not), runs `mae-transfer --help`,
`configs`, `data synthetic`, `convert` and a short 2-process `mae-transfer dist-train` of a shipped config named
relative to configs/, from a working directory of its own. About a minute on 2 cores; select it with `-m wheel`, skip it with `-m "not wheel"`.
"""
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch

from mae_transfer.datasets.synthetic import ensure_synthetic
from mae_transfer.models import mae_vit_tiny_patch16

pytestmark = pytest.mark.wheel

REPO = Path(__file__).resolve().parents[2]
SOURCES = ('setup.py', 'pyproject.toml', 'README.md', 'MANIFEST.in', 'mae_transfer', 'configs')
TINY_PRETRAIN = 'pretrain/mae_vit-tiny-p16_1xb32-coslr-50e_synthetic-128x128.py'


def start(command, cwd: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([str(part) for part in command], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def succeeded(process: subprocess.Popen, timeout: int = 300) -> subprocess.CompletedProcess:
    stdout, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, f'{process.args}\n{stdout[-3000:]}\n{stderr[-3000:]}'
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def run(command, cwd: Path, env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    return succeeded(start(command, cwd, env), timeout)


@pytest.fixture(scope='module')
def installed(tmp_path_factory) -> dict:
    """A fresh venv with the wheel installed; returns its paths and an environment to run it in."""
    root = tmp_path_factory.mktemp('wheel')
    env = {key: value for key, value in os.environ.items() if key not in ('PYTHONPATH', 'PYTHONHOME')}
    # build from a copy of the sources, so the build leaves nothing in the checkout (build/, *.egg-info)
    source = root / 'source'
    source.mkdir()
    for name in SOURCES:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        kwargs = dict(ignore=shutil.ignore_patterns('__pycache__', '*.pyc')) if (REPO / name).is_dir() else {}
        copy(REPO / name, source / name, **kwargs)
    run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '--no-index', '-q',
         '-w', root / 'dist', source], root, env)
    wheel, = (root / 'dist').glob('mae_transfer-*.whl')

    # the base interpreter of the project venv; the project venv's site-packages by a path line in a .pth file
    # (its own .pth files, among them the editable install's finder, are not processed: the checkout stays unseen)
    venv = root / 'venv'
    base_python = getattr(sys, '_base_executable', sys.executable)
    run([base_python, '-m', 'venv', '--system-site-packages', '--without-pip', venv], root, env)
    python = venv / 'bin' / 'python'
    site_packages = Path(run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'], root,
                             env).stdout.strip())
    (site_packages / 'project_stack.pth').write_text(sysconfig.get_paths()['purelib'] + '\n')
    run([python, '-m', 'pip', 'install', '--no-deps', '--no-index', '--ignore-installed', '--no-compile', '-q',
         wheel], root, env)
    work = root / 'work'
    work.mkdir()
    return dict(python=python, command=venv / 'bin' / 'mae-transfer', site_packages=site_packages, work=work,
                env=dict(env, PATH=f'{venv / "bin"}{os.pathsep}{env.get("PATH", "")}'))


def test_the_installed_package_is_the_wheel_with_its_configs(installed):
    probe = ('import json, mae_transfer; from mae_transfer.utils.configs import CONFIG_ROOT, shipped_configs; '
             'from mae_transfer.tools import demo; '
             'print(json.dumps(dict(package=mae_transfer.__file__, root=str(CONFIG_ROOT), '
             'configs=len(shipped_configs()), demo=[str(demo.PRETRAIN_CONFIG)] + '
             '[str(task.config) for task in demo.TASKS.values()])))')
    found = json.loads(run([installed['python'], '-c', probe], installed['work'], installed['env']).stdout)
    package = Path(found['package'])
    assert package.is_relative_to(installed['site_packages']), package  # not the checkout's copy
    assert Path(found['root']) == package.parent / 'configs'
    assert found['configs'] == len([p for p in (REPO / 'configs').rglob('*.py') if '_base_' not in p.parts])
    assert all(Path(path).is_file() for path in found['demo'])  # the demo's built-in default is in the wheel


def test_help_convert_and_train_run_from_the_wheel(installed):
    work, env, command = installed['work'], installed['env'], installed['command']
    # the tiny pretraining config, named relative to configs/, on a few images in ./data/ (its default data root);
    # started first and checked last: each command is one process busy on one core, the others run beside it
    ensure_synthetic('pretrain', work / 'data' / 'synthetic_images', num_images=8, size_range=(40, 56))
    # two gloo processes through torchrun: what tools/dist_train.sh did, from the wheel
    train = start([command, 'dist-train', TINY_PRETRAIN, '2', '--epochs', '2', '--work-dir', 'work_dirs/tiny',
                   '--cfg-options',
                   'model.img_size=32', 'train_dataloader.dataset.crop_size=32', 'train_dataloader.batch_size=4',
                   'auto_scale_lr.base_batch_size=4', 'train_dataloader.num_workers=0',
                   'train_dataloader.persistent_workers=False', 'custom_hooks=[]',
                   'default_hooks.checkpoint.interval=1', 'default_hooks.logger.interval=1'], work,
                  dict(env, PORT='29631'))
    try:
        listing = run([command, '--help'], work, env).stdout
        assert 'mae-transfer train' in listing and 'benchmark' in listing
        configs = run([command, 'configs', 'det'], work, env).stdout
        assert 'det/mask-rcnn_vit-tiny-p16_1xb4-lsj-600i_synthetic-128x128.py' in configs
        assert 'mae-transfer data synthetic det' in configs  # the missing set says how to write it
        written = run([command, 'data', 'synthetic', 'cls', '--out', 'cls_set'], work, env).stdout
        assert 'cls_set: the cls synthetic set' in written and (work / 'cls_set' / 'train').is_dir()

        # an official-layout MAE checkpoint ({'model': ...}, encoder and decoder) of the tiny size
        torch.manual_seed(0)
        torch.save({'model': mae_vit_tiny_patch16(img_size=32).state_dict()}, work / 'official_tiny.pth')
        converted = run([command, 'convert', 'official_tiny.pth', 'tiny_encoder.safetensors'], work, env).stdout
        assert 'encoder tensors' in converted and 'wrote tiny_encoder.safetensors' in converted
        from safetensors.torch import load_file
        assert 'blocks.0.attn.qkv.weight' in load_file(work / 'tiny_encoder.safetensors')

        missing = subprocess.run([command, 'train', 'det/mask-rcnn_vit-b-mae_lsj-100e_coco.py'], cwd=work, env=env,
                                 capture_output=True, text=True, timeout=300)
        assert missing.returncode != 0 and 'det/mask-rcnn_vit-base-p16_16xb4-amp-lsj-184ki_coco-1024x1024.py' in (
            missing.stderr)

        succeeded(train)
    finally:
        if train.poll() is None:  # an assertion above failed
            train.kill()
            train.communicate()
    assert (work / 'work_dirs' / 'tiny' / 'epoch_2.pth').is_file()
    scalars = next((work / 'work_dirs' / 'tiny').rglob('scalars.json')).read_text().splitlines()
    losses = [json.loads(line)['loss'] for line in scalars if 'loss' in json.loads(line)]
    assert len(losses) >= 2 and all(loss == loss and loss > 0 for loss in losses)  # 2 epochs x 2 steps, finite
