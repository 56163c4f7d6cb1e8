"""Find the shipped configs, resolve a config's name, and build their models under each config's default scope."""
import difflib
from pathlib import Path
from typing import Any, List, Mapping, Optional, Tuple, Union

from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from torch import nn

from .user_errors import UserError


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


class ConfigNotFoundError(FileNotFoundError, UserError):
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


NEW_KEY_MARK = '+'
# the --help of every command's --cfg-options ends with this
CFG_OPTIONS_RULE = ("each key must exist in the config (a typo is an error that names the closest keys; list items "
                    "by index, custom_hooks.0.interval=2); a leading + adds a key on purpose, even under an "
                    "existing dict: +model.backbone.new_arg=1")


class UnknownConfigKeyError(KeyError, UserError):
    """A `--cfg-options` key that is not in the config (a typo, most often); the message names the closest keys."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0])


def merge_cfg_options(cfg: Config, options: Mapping[str, Any]) -> None:
    """`cfg.merge_from_dict(options)` for `--cfg-options`, refusing a key the config does not hold.

    A misspelt key (`train_dataloader.batchsize=8`) would otherwise add an entry that nothing reads, and the run
    would go on with the config's value. Every dotted key must name an existing entry: dicts by key, lists and
    tuples by index (`custom_hooks.0.priority`, as mmengine's allow_list_keys reads them). A key starting with
    `+` is new on purpose and merged unchecked, also a new leaf under an existing dict (a new keyword argument
    of a model); so is a key under another key of the same options (a whole dict replaced, then refined).

    Raises:
        UnknownConfigKeyError: a key without `+` that the config does not hold; the message lists close keys.
    """
    merged = {key.lstrip(NEW_KEY_MARK): value for key, value in options.items()}
    tree = cfg.to_dict()
    for key in options:
        if key.startswith(NEW_KEY_MARK) or _set_above(key, merged):
            continue
        problem = _missing_part(tree, key)
        if problem is not None:
            close = _closest_keys(tree, key) if problem.startswith('no such key') else []
            hint = f'did you mean {", ".join(close)}? ' if close else ''
            raise UnknownConfigKeyError(f'--cfg-options {key}: {problem}; {hint}to add a new key on purpose, '
                                        f'write {NEW_KEY_MARK}{key}=...')
    cfg.merge_from_dict(merged)


def _set_above(key: str, options: Mapping[str, Any]) -> bool:
    parts = key.split('.')
    return any('.'.join(parts[:end]) in options for end in range(1, len(parts)))


def _missing_part(tree: Any, key: str) -> Optional[str]:
    """Why `key` is not in the nested dicts and lists `tree`, or None when it is."""
    node, walked = tree, []
    for part in key.split('.'):
        where = '.'.join(walked) or 'the config'
        if isinstance(node, Mapping):
            if part not in node:
                return f'no such key in {where}'
            node = node[part]
        elif isinstance(node, (list, tuple)):
            if not part.isdigit() or int(part) >= len(node):
                return f'{where} is a list of {len(node)} items: index it with 0..{len(node) - 1}'
            node = node[int(part)]
        else:
            return f'{where} is {node!r}, not a dict: set it whole'
        walked.append(part)
    return None


def _dotted_keys(node: Any, prefix: str = '') -> List[str]:
    """Every key of nested dicts and lists, dotted: ['model', 'model.backbone', 'custom_hooks.0.type', ...]."""
    if isinstance(node, Mapping):
        items = [(str(key), value) for key, value in node.items()]
    elif isinstance(node, (list, tuple)):
        items = [(str(index), value) for index, value in enumerate(node)]
    else:
        return []
    keys = []
    for name, value in items:
        keys += [prefix + name, *_dotted_keys(value, f'{prefix}{name}.')]
    return keys


def _closest_keys(tree: Any, key: str) -> List[str]:
    """Existing dotted keys close to `key`: the misspelt last name among its siblings (`train_dataloader.batchsize`
    -> `train_dataloader.batch_size`); when the parent is missing too (a typo further up), whole keys of the
    same depth, else any key."""
    keys = _dotted_keys(tree)
    parent, _, leaf = key.rpartition('.')
    siblings = {k.rpartition('.')[2]: k for k in keys if k.rpartition('.')[0] == parent}
    close = [siblings[name] for name in difflib.get_close_matches(leaf, list(siblings), n=3, cutoff=0.6)]
    if close or not parent or parent in keys:
        return close
    same_depth = [k for k in keys if k.count('.') == key.count('.')]
    return difflib.get_close_matches(key, same_depth, n=3, cutoff=0.6) or \
        difflib.get_close_matches(key, keys, n=3, cutoff=0.6)


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
