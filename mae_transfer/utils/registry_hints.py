"""Turn mmengine's "X is not in the mmdet::model registry" into advice: the scoped name, or close names."""
import difflib
import importlib
import re
from typing import List, Optional

from mmengine.registry import Registry

from .. import registry as our_registries

_MISSING = re.compile(r"`?([\w.]+)`? is not in the ([\w]+)::([\w ]+?) registry")


def _our_registry(name: str) -> Optional[Registry]:
    for value in vars(our_registries).values():
        if isinstance(value, Registry) and value.scope == our_registries.SCOPE and value.name == name:
            return value
    return None


def _known_names(registry: Registry) -> List[str]:
    for location in registry._locations or []:
        importlib.import_module(location)
    return list(registry.module_dict)


def missing_type_hint(error: BaseException) -> Optional[str]:
    """A one-paragraph hint for a config naming a type its registry does not hold, or None."""
    match = _MISSING.search(str(error))
    if match is None:
        return None
    type_name, scope, registry_name = match.groups()
    short = type_name.split('.')[-1]
    ours = _our_registry(registry_name)
    if ours is not None and short in _known_names(ours):
        return (f"'{type_name}' is not a {scope} {registry_name}; it is ours: write type='mae_transfer.{short}' "
                f"(configs under default_scope='{scope}' must name mae_transfer classes with the prefix, and "
                f"need custom_imports=dict(imports=['mae_transfer'], allow_failed_imports=False))")
    candidates = [f'mae_transfer.{name}' for name in _known_names(ours)] if ours is not None else []
    framework = ours.parent.children.get(scope) if ours is not None and ours.parent is not None else None
    if framework is not None and framework is not ours:  # a lookup in our own scope: no framework names
        framework.import_from_location()
        candidates += list(framework.module_dict)
    close = difflib.get_close_matches(short, [c.split('.')[-1] for c in candidates], n=3, cutoff=0.6)
    if not close:
        return f"'{type_name}' is not registered in {scope}::{registry_name} (is it spelled right? is its module " \
               f"imported through custom_imports?)"
    suggestions = [c for c in candidates if c.split('.')[-1] in close][:3]
    return f"'{type_name}' is not registered in {scope}::{registry_name}; did you mean {', '.join(suggestions)}?"
