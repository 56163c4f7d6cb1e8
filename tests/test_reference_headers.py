"""Every full-size pretraining and classification config names, in its header, the reference it was checked
against (facebookresearch/mae at a commit) and where the remaining differences are listed."""
import pytest

from mae_transfer.utils.configs import CONFIG_ROOT

from helpers.paths import REPO

FULL_SIZE = sorted(path for task in ('pretrain', 'cls') for path in (CONFIG_ROOT / task).glob('*.py')
                   if '_vit-tiny-' not in path.name)


def header(path):
    lines = path.read_text().splitlines()
    return '\n'.join(line for line in lines[:next(i for i, line in enumerate(lines) if not line.startswith('#'))])


def test_there_are_full_size_configs():
    assert len(FULL_SIZE) == 8


@pytest.mark.parametrize('path', FULL_SIZE, ids=lambda path: path.name)
def test_header_names_the_reference_commit_and_the_differences(path):
    text = header(path)
    assert 'facebookresearch/mae at efb2a80' in text, path.name
    doc = 'docs/pretraining.md' if path.parent.name == 'pretrain' else 'docs/classification.md'
    assert doc in text and (REPO / doc).is_file(), path.name
