"""Clear errors for unreadable annotation files (the file and the problem, not a bare JSONDecodeError) and quiet
COCO indexing. Datasets and metrics both read COCO files, so this sits below both."""
import contextlib
import io
import json
from pathlib import Path
from typing import Any, Sequence, TypeVar, Union

from pycocotools.coco import COCO

CocoApi = TypeVar('CocoApi', bound=COCO)


def load_json_annotations(path: Union[str, Path], required_keys: Sequence[str] = (), kind: str = 'annotation',
                          expect_list: bool = False) -> Any:
    """Parse a JSON annotation file; raise `ValueError` naming the file for non-JSON content or a wrong layout.

    Args:
        path: the file.
        required_keys: top-level keys a dict must hold (e.g. COCO's 'images', 'annotations').
        kind: what the file is, for the message ('annotation', 'detection results', ...).
        expect_list: the file must hold a list (COCO results format) instead of a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{kind} file {path} does not exist')
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f'{kind} file {path} is not valid JSON ({error})') from error
    expected = list if expect_list else dict
    if not isinstance(data, expected):
        raise ValueError(f'{kind} file {path} holds a JSON {type(data).__name__}, expected a {expected.__name__}')
    missing = [key for key in required_keys if key not in data]
    if missing:
        raise ValueError(f'{kind} file {path} lacks the key(s) {missing} (found {sorted(data)[:10]}); '
                         'is it a COCO-format file?')
    return data


def index_coco_quietly(coco: CocoApi, data: dict) -> CocoApi:
    """Give a pycocotools `COCO` (or subclass) instance already parsed and checked data, and build its index
    without pycocotools' prints on stdout."""
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def load_coco_quietly(ann_file: Union[str, Path]) -> COCO:
    """pycocotools' COCO without its prints on stdout; a clear `ValueError` naming the file when it is not JSON
    or lacks COCO's 'images' / 'annotations'."""
    data = load_json_annotations(ann_file, required_keys=('images', 'annotations'), kind='COCO keypoint annotation')
    return index_coco_quietly(COCO(), data)


__all__ = ['index_coco_quietly', 'load_coco_quietly', 'load_json_annotations']
