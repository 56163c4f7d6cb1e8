"""Report the installed stack and check that its compiled parts really run.

`python -m mae_transfer.utils.collect_env` prints versions; `--verify` also runs the checks and exits
non-zero, naming the broken part and the usual fix, if any of them fails.
"""
import argparse
import importlib
import importlib.metadata
import sys
from typing import Callable, Dict, List, Tuple

# import name -> distribution name (for the version)
PACKAGES = {'torch': 'torch', 'torchvision': 'torchvision', 'timm': 'timm', 'mmengine': 'mmengine', 'mmcv': 'mmcv',
            'mmdet': 'mmdet', 'mmseg': 'mmsegmentation', 'pycocotools': 'pycocotools', 'numpy': 'numpy',
            'onnx': 'onnx', 'onnxruntime': 'onnxruntime'}


def collect_versions() -> Dict[str, str]:
    versions = {'python': sys.version.split()[0]}
    for name, distribution in PACKAGES.items():
        try:
            importlib.import_module(name)
            versions[name] = importlib.metadata.version(distribution)
        except Exception as error:  # a broken import is reported, not raised
            versions[name] = f'NOT IMPORTABLE ({type(error).__name__}: {error})'
    try:
        import torch
        versions['torch.cuda'] = f'{torch.version.cuda} (GPU available: {torch.cuda.is_available()})'
    except Exception:
        pass
    return versions


def _tiny_boxes():
    import torch
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [50., 50., 60., 60.]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    return boxes, scores


def check_torchvision_nms() -> None:
    from torchvision.ops import nms
    keep = nms(*_tiny_boxes(), iou_threshold=0.5)
    assert keep.tolist() == [0, 2], f'unexpected result {keep.tolist()}'


def check_mmcv_nms() -> None:
    import torch
    from mmcv.ops import nms
    devices = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
    for device in devices:
        boxes, scores = (t.to(device) for t in _tiny_boxes())
        _, keep = nms(boxes, scores, iou_threshold=0.5)
        assert keep.cpu().tolist() == [0, 2], f'unexpected result on {device}: {keep.tolist()}'


def check_imports() -> None:
    import mmdet.models  # noqa: F401
    import mmseg.models  # noqa: F401


# (name, check, what usually fixes it)
CHECKS: List[Tuple[str, Callable[[], None], str]] = [
    ('torchvision.ops.nms', check_torchvision_nms,
     'torch and torchvision do not match: install the PyPI pair pinned in requirements/stack.txt '
     '(a local "+cpu" torch wheel breaks PyPI torchvision)'),
    ('mmcv.ops.nms', check_mmcv_nms,
     'mmcv was built against another torch or without ops: rebuild it with '
     '`python3 tools/setup_env.py --force` (or pip install --no-cache-dir --no-build-isolation mmcv==2.1.0)'),
    ('import mmdet, mmseg', check_imports,
     'mmdet/mmseg need mmcv>=2.0.0rc4,<2.2.0, and mmseg needs `regex` and `ftfy`'),
]


def verify() -> List[str]:
    """Run every check; return one message per failure (empty when the stack works)."""
    failures = []
    for name, check, hint in CHECKS:
        try:
            check()
            print(f'  ok    {name}')
        except Exception as error:
            print(f'  FAIL  {name}: {type(error).__name__}: {error}')
            failures.append(f'{name} failed ({type(error).__name__}: {error}). Likely fix: {hint}')
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--verify', action='store_true', help='also run the compiled ops and imports')
    args = parser.parse_args()
    for name, version in collect_versions().items():
        print(f'  {name:<12} {version}')
    if args.verify:
        failures = verify()
        if failures:
            print('\nThe stack is broken:\n' + '\n'.join(f'- {f}' for f in failures), file=sys.stderr)
            sys.exit(1)
        print('stack verified')


if __name__ == '__main__':
    main()
