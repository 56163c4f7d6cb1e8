"""Clear errors for unreadable annotation files: the file and the problem, not a bare JSONDecodeError."""
import json
from pathlib import Path
from typing import Any, Sequence, Union


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


__all__ = ['load_json_annotations']
