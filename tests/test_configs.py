"""Every shipped config builds its model under its own default scope: this catches every scope mistake."""
import contextlib
import re

import pytest
import torch
from mmengine.config import Config
from torch import nn

from mae_transfer.models.arch import ARCHS
from mae_transfer.utils.configs import CONFIG_ROOT, build_model, shipped_configs

CONFIGS = shipped_configs()


def test_configs_are_found():
    assert CONFIGS, f'no configs under {CONFIG_ROOT}'


@pytest.mark.parametrize('config', CONFIGS, ids=lambda path: str(path.relative_to(CONFIG_ROOT)))
def test_config_builds_its_model(config):
    # full-size models are built on the meta device: the same modules and shapes, without allocating and
    # initialising hundreds of millions of weights (tiny twins and smoke configs are built for real)
    full_size = '_vit-tiny-' not in config.name
    with torch.device('meta') if full_size else contextlib.nullcontext():
        model = build_model(config)
    assert isinstance(model, nn.Module)
    assert sum(p.numel() for p in model.parameters()) > 0


NAME = re.compile(r'^(?P<method>mae|mask-rcnn|upernet|heatmap(-simple)?|ft|partial-ft-last\d+|linear-probe)'
                  r'_vit-(?P<arch>[a-z]+)-p(?P<patch>\d+)'
                  r'(_(?P<gpus>\d+)xb(?P<batch>\d+)(-[a-z0-9]+)*-(?P<length>\d+(e|i|ki)))?'
                  r'_(?P<dataset>[a-z0-9]+)-(?P<h>\d+)x(?P<w>\d+)\.py$')


@pytest.mark.parametrize('config', CONFIGS, ids=lambda path: str(path.relative_to(CONFIG_ROOT)))
def test_config_name_follows_the_scheme(config):
    match = NAME.match(config.name)
    assert match, f'{config.name} does not follow configs/README.md'
    assert match['arch'] in ARCHS
    cfg = Config.fromfile(str(config))
    backbone = cfg.model.get('backbone', cfg.model)
    assert backbone.get('arch', 'base') == match['arch'], 'the name and the model disagree on the size'
    if config.parent.name != 'smoke':
        assert match['length'], 'every recipe names its length'
        loop = cfg.train_cfg
        unit = 'e' if 'max_epochs' in loop else 'i'
        assert match['length'].endswith(unit), f'{loop} is not what the name says'


@pytest.mark.parametrize('config', [c for c in CONFIGS if '_vit-base-' not in c.name and c.parent.name != 'smoke'],
                         ids=lambda path: path.name)
def test_non_base_configs_inherit_a_sibling(config):
    """ViT-L/H, tiny twins and variants inherit a config of their own task folder, never a fragment."""
    text = config.read_text()
    parents = re.findall(r"_base_ = \[?'\./([^']+)'", text)
    assert parents and (config.parent / parents[0]).is_file(), f'{config.name} must inherit a sibling recipe'
