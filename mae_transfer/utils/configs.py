"""Find the shipped configs and build their models under each config's own default scope."""
from pathlib import Path
from typing import List, Union

from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from torch import nn

CONFIG_ROOT = Path(__file__).resolve().parents[2] / 'configs'


def shipped_configs(root: Path = CONFIG_ROOT) -> List[Path]:
    """Every config meant to be run (those under `_base_/` are fragments, not configs)."""
    return sorted(path for path in root.rglob('*.py') if '_base_' not in path.parts)


def build_model(config: Union[str, Path, Config]) -> nn.Module:
    """Build `cfg.model` the way the Runner does: under the config's `default_scope`.

    Loading the config runs its `custom_imports` (so `import mae_transfer` fails early if broken).
    """
    cfg = config if isinstance(config, Config) else Config.fromfile(str(config))
    scope = cfg.get('default_scope')
    if scope is None:
        raise ValueError(f'{getattr(cfg, "filename", config)} sets no default_scope; every config of ours must')
    with DefaultScope.overwrite_default_scope(scope):
        return MODELS.build(cfg.model)
