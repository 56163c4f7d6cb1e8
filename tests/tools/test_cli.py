"""The `mae-transfer` console command: every command is a package module with a thin tools/ script, help shows
examples, pretrain shortcuts, and configs named relative to configs/ or by path."""
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from mae_transfer import cli
from mae_transfer.utils.configs import CONFIG_ROOT, ConfigNotFoundError, config_name, resolve_config

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = {'train': 'train.py', 'test': 'test.py', 'infer': 'infer.py', 'demo': 'demo.py',
           'convert': 'convert_checkpoint.py', 'download': 'download_checkpoint.py',
           'visualize': 'visualize_reconstruction.py', 'benchmark': 'benchmark.py', 'export': 'export.py',
           'plan': 'plan.py', 'gpu_check': 'gpu_check.py', 'configs': 'configs.py', 'data': 'data.py',
           'dist_train': 'dist_train.sh', 'dist_test': 'dist_test.sh'}
# loaded by its path: on a bare GPU machine `import mae_transfer` needs mmengine, which gpu_check installs first
LOADED_BY_PATH = {'gpu_check'}
DET_BASE = 'det/mask-rcnn_vit-base-p16_16xb4-amp-lsj-184ki_coco-1024x1024.py'


def test_every_command_has_its_module_a_thin_script_and_help_with_an_example(capsys):
    cli.main(['--help'])
    listing = capsys.readouterr().out
    for command, (module, _) in cli.COMMANDS.items():
        assert callable(importlib.import_module(f'mae_transfer.tools.{module}').main), module
        script = REPO / 'tools' / SCRIPTS[module]
        entry = (f"'mae_transfer' / 'tools' / '{module}.py'" if module in LOADED_BY_PATH
                 else f'-m mae_transfer.cli {command} ' if script.suffix == '.sh'  # torchrun wrappers
                 else f'from mae_transfer.tools.{module} import main')
        assert entry in script.read_text(), script
        assert len(script.read_text().splitlines()) < 25, f'{script} should be a thin entry point'
        assert f'  {command} ' in listing and f'mae-transfer {command}' in listing
    with pytest.raises(SystemExit) as exit_info:
        cli.main(['test', '--help'])
    assert exit_info.value.code == 0
    assert 'mae-transfer test CONFIG' in capsys.readouterr().out  # the tool's docstring examples


def test_unknown_command_is_refused_with_the_list():
    with pytest.raises(SystemExit, match="unknown command 'trian'[\\s\\S]*train"):
        cli.main(['trian', 'x.py'])


def test_pretrain_defaults_to_the_tiny_recipe_and_maps_images_and_epochs():
    args = cli.pretrain_arguments(['--images', '/photos', '--epochs', '200', '--amp'])
    assert args[0].endswith(cli.TINY_PRETRAIN) and resolve_config(args[0])
    assert args[1:] == ['--epochs', '200', '--amp', '--cfg-options', 'train_dataloader.dataset.data_root=/photos']
    assert cli.pretrain_arguments(['my.py', '--resume']) == ['my.py', '--resume']
    with pytest.raises(SystemExit, match='--images needs a value'):
        cli.pretrain_arguments(['--images'])


def test_pretrain_without_images_writes_the_built_in_set_first(tmp_path, monkeypatch):
    import mae_transfer.datasets.synthetic as synthetic
    written = []
    monkeypatch.setattr(synthetic, 'ensure_synthetic', lambda task, *a, **k: written.append(task))
    assert cli.pretrain_arguments(['--epochs', '2'])[1:] == ['--epochs', '2'] and written == ['pretrain']
    cli.pretrain_arguments(['my.py'])  # the user's own config reads the user's own data
    assert written == ['pretrain']


def test_configs_are_named_by_path_or_relative_to_configs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nowhere near the checkout
    shipped = CONFIG_ROOT / DET_BASE
    assert resolve_config(DET_BASE) == str(shipped)
    assert resolve_config(f'configs/{DET_BASE}') == str(shipped)  # the README's spelling, from anywhere
    assert resolve_config(shipped) == str(shipped)
    assert config_name(shipped) == DET_BASE and config_name('elsewhere.py') == 'elsewhere.py'
    own = tmp_path / 'det' / Path(DET_BASE).name  # a file of the user's own wins over the shipped one
    own.parent.mkdir()
    own.write_text("_base_ = []\n")
    assert resolve_config(DET_BASE) == DET_BASE


def test_a_missing_config_is_one_clear_error_with_close_matches(capsys):
    with pytest.raises(ConfigNotFoundError) as error:
        resolve_config('det/mask-rcnn_vit-b-mae_lsj-100e_coco.py')
    message = str(error.value)
    assert message.startswith('config not found: det/mask-rcnn_vit-b-mae_lsj-100e_coco.py')
    assert f'  {DET_BASE}' in message.splitlines()[1:]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(['train', 'det/mask-rcnn_vit-b-mae_lsj-100e_coco.py'])
    assert 'close matches' in str(exit_info.value.code) and DET_BASE in str(exit_info.value.code)


def test_the_commands_run_as_modules_and_as_scripts():
    expected = ((['-m', 'mae_transfer.tools.train', '--help'], 'usage: train.py'),
                (['tools/benchmark.py', 'det', '--help'], 'usage: benchmark.py det'),
                (['-m', 'mae_transfer.cli', 'benchmark', 'cls', '--help'], 'usage: mae-transfer benchmark cls'))
    # side by side: each is mostly the start-up of a fresh interpreter (torch, mmengine)
    processes = [subprocess.Popen([sys.executable, *command], cwd=REPO, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for command, _ in expected]
    for process, (_, usage) in zip(processes, expected):
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr[-2000:]
        assert stdout.startswith(usage), stdout[:200]
