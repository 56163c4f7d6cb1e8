"""Build a sub-module from its config dict through one of our registries, whatever the default scope is.

`Registry.build` switches to the registry of the current default scope: under an mmdet or mmseg config our
own modules would then look their sub-modules up in mmdet's or mmseg's registry. `build_module` looks the
class up in the registry it is given (`Registry.get`) and instantiates it, so a class registered into our
registries (by us or by a user) works from a config under any default scope.
"""
import copy
from typing import Any, Mapping

from mmengine.registry import Registry

from .registry_hints import missing_type_hint


class UnknownTypeError(KeyError, ValueError):
    """A config names a type that its registry does not hold: a KeyError, as mmengine raises, and a ValueError,
    as a wrong argument value is."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ''


def build_module(registry: Registry, cfg: Any, **defaults: Any) -> Any:
    """Build a config dict from one of our registries, whatever the current default scope is.

    The class named by `type` is looked up in `registry` itself (`Registry.get`: our classes and those a user
    registered into it, then mmengine's; a `scope.Name` type reaches that scope's registry) and instantiated
    with the other entries, `defaults` filling in what the config leaves out (`type` included). An object
    that is not a mapping (an already built module) is returned as it is.

    Args:
        registry: one of `mae_transfer.registry`'s registries (MODELS, TASK_UTILS, ...).
        cfg: dict(type=..., **kwargs); `type` may also be the class itself.
        **defaults: arguments used where `cfg` has none.
    """
    if not isinstance(cfg, Mapping):
        return cfg
    args = dict(defaults)
    args.update(copy.deepcopy(dict(cfg)))
    kind = args.pop('type', None)
    if kind is None:
        raise TypeError(f'a {registry.name} config needs a type, got {dict(cfg)}')
    cls = registry.get(kind) if isinstance(kind, str) else kind
    if cls is None:
        message = f'`{kind}` is not in the {registry.scope}::{registry.name} registry'
        hint = missing_type_hint(KeyError(message)) or message  # the closest registered names, if any
        raise UnknownTypeError(f'{hint}; registered: {", ".join(sorted(registry.module_dict))}')
    return cls(**args)


__all__ = ['UnknownTypeError', 'build_module']
