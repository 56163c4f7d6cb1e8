"""The `mae-transfer` console command: every command maps to a tool, help shows examples, pretrain shortcuts."""
import pytest

from mae_transfer import cli


def test_every_command_has_its_tool_and_help_with_an_example(capsys):
    cli.main(['--help'])
    listing = capsys.readouterr().out
    for command, (script, _) in cli.COMMANDS.items():
        assert (cli.TOOLS_DIR / script).is_file(), script
        assert f'  {command} ' in listing and f'mae-transfer {command}' in listing
    with pytest.raises(SystemExit) as exit_info:
        cli.main(['test', '--help'])
    assert exit_info.value.code == 0
    assert 'python tools/test.py CONFIG' in capsys.readouterr().out  # the tool's docstring examples


def test_unknown_command_is_refused_with_the_list():
    with pytest.raises(SystemExit, match="unknown command 'trian'[\\s\\S]*train"):
        cli.main(['trian', 'x.py'])


def test_pretrain_defaults_to_the_tiny_recipe_and_maps_images_and_epochs():
    args = cli.pretrain_arguments(['--images', '/photos', '--epochs', '200', '--amp'])
    assert args[0].endswith(cli.TINY_PRETRAIN)
    assert args[1:] == ['--epochs', '200', '--amp', '--cfg-options', 'train_dataloader.dataset.data_root=/photos']
    assert cli.pretrain_arguments(['my.py', '--resume']) == ['my.py', '--resume']
    with pytest.raises(SystemExit, match='--images needs a value'):
        cli.pretrain_arguments(['--images'])
