"""Find the shipped configs, resolve a config's name, and build their models under each config's default scope."""
import difflib
from pathlib import Path
from typing import List, Optional, Tuple, Union

from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from torch import nn


def _config_root() -> Path:
    """The shipped configs: `mae_transfer/configs/` in an installed wheel (package data, see setup.py), else the
    top-level `configs/` of the source checkout beside the package (a checkout or an editable install)."""
    package = Path(__file__).resolve().parents[1]
    installed = package / 'configs'
    return installed if installed.is_dir() else package.parent / 'configs'


CONFIG_ROOT = _config_root()


def shipped_configs(root: Path = CONFIG_ROOT) -> List[Path]:
    """Every config meant to be run (those under `_base_/` are fragments, not configs)."""
    return sorted(path for path in root.rglob('*.py') if '_base_' not in path.parts)


class ConfigNotFoundError(FileNotFoundError):
    """A config name that is neither a file nor a shipped config; the message lists close matches."""


def resolve_config(name: Union[str, Path], root: Path = CONFIG_ROOT) -> str:
    """The file of a config named by its path, or by its path relative to the shipped configs folder.

    `det/mask-rcnn_vit-base-p16_16xb4-amp-lsj-184ki_coco-1024x1024.py` names a shipped config from any working
    directory, with or without a leading `configs/` (so the README's `configs/...` examples work from an
    installed wheel too). An existing file always wins over a shipped config of the same name.

    Raises:
        ConfigNotFoundError: no such file or shipped config; the message lists the closest shipped names.
    """
    path = Path(name).expanduser()
    if path.is_file():
        return str(path)
    if not path.is_absolute():
        relative = Path(*path.parts[1:]) if len(path.parts) > 1 and path.parts[0] == 'configs' else path
        for candidate in (root / path, root / relative):
            if candidate.is_file():
                return str(candidate)
    raise ConfigNotFoundError(_not_found_message(str(name), root))


def _not_found_message(name: str, root: Path) -> str:
    names = [path.relative_to(root).as_posix() for path in shipped_configs(root)] if root.is_dir() else []
    query = name[len('configs/'):] if name.startswith('configs/') else name
    by_path = difflib.get_close_matches(query, names, n=5, cutoff=0.6)
    by_file = difflib.get_close_matches(Path(query).name, [Path(n).name for n in names], n=5, cutoff=0.6)
    close = list(dict.fromkeys(by_path + [n for n in names if Path(n).name in by_file]))[:5]
    message = f'config not found: {name} is neither a file nor a config under {root}'
    if close:
        return message + '; close matches:\n  ' + '\n  '.join(close)
    folders = sorted({n.split('/')[0] for n in names})
    return message + f' ({len(names)} configs there, in {", ".join(folders) or "no folders"})'


def config_name(config: Union[str, Path], root: Path = CONFIG_ROOT) -> str:
    """How to show a config: its name relative to the shipped configs folder when it is one of them, else as given."""
    try:
        return Path(resolve_config(config, root)).resolve().relative_to(root.resolve()).as_posix()
    except (ConfigNotFoundError, ValueError):
        return str(config)


def load_config(name: Union[str, Path]) -> Config:
    """`Config.fromfile` of a config named as `resolve_config` accepts."""
    return Config.fromfile(resolve_config(name))


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


def evaluation_dataset(cfg: Config) -> dict:
    """The dataset config of the test loader, else of the validation loader ({} when neither has one)."""
    for key in ('test_dataloader', 'val_dataloader'):
        loader = cfg.get(key)
        if loader and loader.get('dataset'):
            return loader['dataset']
    return {}


def sliding_window(cfg: Config) -> Tuple[Tuple[int, int], Tuple[int, int]]:
    """A segmentation config's (crop_size, stride) for slide inference: its test_cfg, else the training crop with
    a 2/3 stride."""
    test_cfg = cfg.model.get('test_cfg') or {}
    crop = test_cfg.get('crop_size') or cfg.model.get('data_preprocessor', {}).get('size')
    if crop is None:
        raise ValueError('slide inference needs model.test_cfg.crop_size (or model.data_preprocessor.size)')
    crop = (crop, crop) if isinstance(crop, int) else tuple(crop)
    stride = test_cfg.get('stride') or tuple(max(1, side * 2 // 3) for side in crop)
    return crop, tuple(stride)
