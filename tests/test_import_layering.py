"""Imports inside mae_transfer point one way. Every module's imports (top level and inside functions) are read
with `ast`, nothing is imported, and each is checked against the table below."""
import ast
from pathlib import Path
from typing import Iterator, Optional, Tuple

PACKAGE = Path(__file__).resolve().parents[1] / 'mae_transfer'

# Units: the sub-packages and top-level modules of mae_transfer; models.arch / models.layers are apart from the
# rest of 'models' (pure tensor code the checkpoint package reads; models/ imports nothing from checkpoint/: weights
# reach the registered models through mmengine's entries, which checkpoint.mmengine_bridge routes to load_weights).
MUST_NOT_IMPORT = {
    'registry': {'checkpoint', 'models.arch', 'models.layers', 'models', 'codecs', 'datasets', 'engine', 'evaluation',
                 'visualization', 'utils'},
    'checkpoint': {'models', 'datasets', 'engine', 'evaluation', 'visualization'},  # models.arch/layers only
    'models.arch': {'models', 'checkpoint'},
    'models.layers': {'models', 'checkpoint'},
    'models': {'checkpoint', 'engine', 'datasets', 'evaluation', 'visualization'},
    'datasets': {'models', 'engine', 'evaluation'},
    'evaluation': {'datasets', 'models'},
    'export': {'apis', 'tools', 'cli'},  # apis and tools run exported graphs, not the other way round
}
ONLY_IMPORTED_BY = {
    'apis': {'apis', 'tools', 'cli'},
    'codecs': {'codecs', 'datasets', 'models', 'evaluation', 'visualization', 'apis', 'tools', 'cli'},
}


def unit(module: str) -> Optional[str]:
    """'mae_transfer.models.layers.vit' -> 'models.layers'; None for the package itself."""
    parts = module.split('.')[1:]
    if not parts:
        return None
    if parts[0] == 'models' and len(parts) > 1 and parts[1] in ('arch', 'layers'):
        return f'models.{parts[1]}'
    return parts[0]


def imports(path: Path) -> Iterator[Tuple[int, str]]:
    """(line, absolute module name) of every import of mae_transfer in a file; `from x import y` gives x.y."""
    module = '.'.join(path.relative_to(PACKAGE.parent).with_suffix('').parts)
    package = module[:-len('.__init__')] if path.name == '__init__.py' else module.rsplit('.', 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                anchor = package.split('.')[:len(package.split('.')) - node.level + 1]
                base = '.'.join(anchor + ([node.module] if node.module else []))
            names = [f'{base}.{alias.name}' for alias in node.names]
        else:
            continue
        for name in names:
            if name == 'mae_transfer' or name.startswith('mae_transfer.'):
                yield node.lineno, name


def violations():
    for path in sorted(PACKAGE.rglob('*.py')):
        source = unit('.'.join(path.relative_to(PACKAGE.parent).with_suffix('').parts))
        for line, name in imports(path):
            target = unit(name)
            if source is None or target is None or target == source:
                continue
            if target in MUST_NOT_IMPORT.get(source, ()) or source not in ONLY_IMPORTED_BY.get(target, {source}):
                yield f'{path.relative_to(PACKAGE.parent)}:{line}: {source} imports {target} ({name})'


def test_unit_names():
    assert unit('mae_transfer.models.layers.vit.Block') == 'models.layers'
    assert unit('mae_transfer.models.backbones.mae_vit') == 'models'
    assert unit('mae_transfer.checkpoint.formats') == 'checkpoint'
    assert unit('mae_transfer') is None


def test_relative_imports_are_resolved():
    found = {name for _, name in imports(PACKAGE / 'models' / 'pose' / 'estimator.py')}
    assert 'mae_transfer.codecs.geometry.crop_to_image' in found
    assert 'mae_transfer.registry.MODELS' in found


def test_imports_point_one_way():
    assert list(violations()) == []
