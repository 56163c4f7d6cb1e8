"""Find the shipped configs and build their models under each config's own default scope."""
from pathlib import Path
from typing import List, Optional, Union

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


# Model types of the tasks that run under our own default scope; mmdet and mmseg configs are told by scope.
_OWN_TASKS = {'TopdownPoseEstimator': 'pose', 'ViTClassifier': 'cls', 'MAEPretrainer': 'pretrain'}


def config_task(cfg: Config) -> str:
    """Which task a config trains: 'det', 'seg', 'pose', 'cls' or 'pretrain'."""
    scope = cfg.get('default_scope')
    if scope == 'mmdet':
        return 'det'
    if scope == 'mmseg':
        return 'seg'
    model_type = str(cfg.model.get('type', '')).split('.')[-1]
    if model_type in _OWN_TASKS:
        return _OWN_TASKS[model_type]
    raise ValueError(f'cannot tell the task of {getattr(cfg, "filename", "the config")}: default_scope={scope!r}, '
                     f'model type {model_type!r} (known: mmdet, mmseg scopes and {sorted(_OWN_TASKS)})')


def set_pretrained(cfg: Config, checkpoint: Optional[str]) -> None:
    """Point the backbone's init_cfg at a checkpoint (any supported format), or drop it for random init.

    The same switch for every task config: each keeps its encoder under `model.backbone`.
    """
    if 'backbone' not in cfg.model:
        raise ValueError('the config has no model.backbone to load pretrained weights into')
    if checkpoint is None or str(checkpoint).lower() in ('', 'none', 'random'):
        cfg.model.backbone.init_cfg = None
    else:
        cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=str(checkpoint))
