"""Clear errors for unreadable annotation files (the file and the problem, not a bare JSONDecodeError), quiet
COCO indexing, and the content checks a COCO file gets before training starts (`check_coco`). Datasets and
metrics both read COCO files, so this sits below both."""
import contextlib
import io
import json
import logging
import os.path as osp
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, TypeVar, Union

from mmengine.logging import print_log
from pycocotools.coco import COCO

from .user_errors import UserError

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


class AnnotationError(ValueError, UserError):
    """A COCO file whose mistakes cannot be dropped safely: ids that repeat in an evaluation set (COCO evaluation
    matches by id), categories that share an id, a training set none of whose images exists."""


class MissingImagesError(FileNotFoundError, UserError):
    """Image entries of an evaluation set (or of every training image) whose files do not exist."""


EXAMPLES = 3  # examples named per kind of problem in the summary line


class CocoProblems:
    """The problems of one COCO file, by kind: a count, the first few examples and what was done about them."""

    def __init__(self) -> None:
        self.kinds: Dict[str, List[Any]] = {}  # kind -> [count, examples, action]

    def add(self, kind: str, example: str, action: str) -> None:
        entry = self.kinds.setdefault(kind, [0, [], action])
        entry[0] += 1
        if len(entry[1]) < EXAMPLES:
            entry[1].append(example)

    def count(self, kind: str) -> int:
        return self.kinds[kind][0] if kind in self.kinds else 0

    def examples(self, kind: str) -> str:
        count, examples, _ = self.kinds[kind]
        return ', '.join(examples) + (', ...' if count > len(examples) else '')

    def describe(self, kind: str) -> str:
        count, _, action = self.kinds[kind]
        return f'{count} {kind} ({self.examples(kind)}) {action}'

    def summary(self) -> str:
        return '; '.join(self.describe(kind) for kind in self.kinds)


def _box_problem(bbox: Any) -> Optional[str]:
    """Why a COCO box [x, y, w, h] is unusable, or None."""
    try:
        if len(bbox) == 4 and bbox[2] > 0 and bbox[3] > 0:
            return None
    except TypeError:  # None, a number, a string among the values
        pass
    return f'bbox {bbox!r}'


def check_coco(data: dict, ann_file: Union[str, Path], image_dir: Optional[str] = None, test_mode: bool = False,
               keypoints: bool = False) -> dict:
    """Check a parsed COCO file before training or testing starts; log one summary line; drop what is unusable.

    Kinds of problems and what happens (train = `test_mode=False`; test = validation or test set):
      - categories sharing an id: `AnnotationError` (which name would its boxes get?).
      - image entries sharing an id: test: `AnnotationError`; train: every entry of that id and its annotations
        are dropped (pycocotools would keep the last entry and give it the annotations of all of them).
      - image entries whose file is missing under `image_dir` (None: not checked, e.g. a remote backend): test:
        `MissingImagesError` at start-up (not a DataLoader worker's traceback at the end of training); train: the
        entries and their annotations are dropped, unless none of the files exists (a wrong `data_prefix`).
      - annotations sharing an id: test: `AnnotationError`; train: the later ones get new ids (kept).
      - annotations whose image_id is in no image entry, whose category_id is not in `categories`, or whose box
        has a non-positive width or height (or is not [x, y, w, h]): dropped (mmdet drops the last two silently).
      - with `keypoints`: labelled keypoints (v > 0) more than a pixel outside their image: marked unlabelled.

    Args:
        data: the parsed file (`load_json_annotations`); changed in place and returned.
        ann_file: the file, for the messages.
        image_dir: the folder the entries' file_name is relative to.
        test_mode: whether this is an evaluation set.
        keypoints: check the annotations' keypoints too (COCO person keypoints).
    """
    start = time.perf_counter()
    problems = CocoProblems()
    split = 'evaluation' if test_mode else 'training'

    category_ids = Counter(category.get('id') for category in data['categories'])
    repeated = [cid for cid, n in category_ids.items() if n > 1]
    if repeated:
        raise AnnotationError(f'{ann_file}: {len(repeated)} category id(s) name more than one category '
                              f'({repeated[:EXAMPLES]}): give each category its own id')

    image_ids = Counter(image.get('id') for image in data['images'])
    repeated_images = {iid for iid, n in image_ids.items() if n > 1}
    if repeated_images and test_mode:
        raise AnnotationError(f'{ann_file}: {len(repeated_images)} image id(s) are used by more than one image entry '
                              f'({sorted(repeated_images, key=str)[:EXAMPLES]}); COCO evaluation matches by id: give '
                              'each image its own id')
    images = []
    for image in data['images']:
        if image.get('id') in repeated_images:
            problems.add('image entries sharing an id', f'id {image.get("id")}: {image.get("file_name")}',
                         'dropped with their annotations')
            continue
        images.append(image)

    if image_dir is not None:
        present = []
        for image in images:
            if osp.exists(osp.join(image_dir, image['file_name'])):
                present.append(image)
            else:
                problems.add('image files missing', str(image['file_name']), 'dropped with their annotations')
        missing = problems.count('image files missing')
        if missing and (test_mode or not present):
            raise MissingImagesError(
                f'{ann_file}: {missing} of the {len(images)} image files of this {split} set are missing under '
                f'{image_dir} ({problems.examples("image files missing")}): '
                + ('an evaluation set must be complete; ' if test_mode else '')
                + "check the dataset's data_root and data_prefix, or remove those entries from the file")
        images = present
    data['images'] = images

    sizes = {image['id']: (image.get('width'), image.get('height')) for image in images}
    dropped_image_ids = set(image_ids) - set(sizes)
    ann_ids = Counter(ann.get('id') for ann in data['annotations'])
    repeated_anns = {aid for aid, n in ann_ids.items() if n > 1}
    if repeated_anns and test_mode:
        raise AnnotationError(f'{ann_file}: {len(repeated_anns)} annotation id(s) are used more than once '
                              f'({sorted(repeated_anns, key=str)[:EXAMPLES]}); COCO evaluation matches by id: give '
                              'each annotation its own id')
    next_id = max((aid for aid in ann_ids if isinstance(aid, int)), default=0) + 1
    seen_ids = set()
    kept = []
    for ann in data['annotations']:
        name = f'ann {ann.get("id")}'
        if ann.get('image_id') not in sizes:
            if ann.get('image_id') not in dropped_image_ids:  # those are counted with their image
                problems.add('annotations whose image_id is in no image entry', f'{name}: {ann.get("image_id")}',
                             'dropped')
            continue
        if ann.get('category_id') not in category_ids:
            problems.add('annotations with a category_id not in categories', f'{name}: {ann.get("category_id")}',
                         'dropped')
            continue
        box = _box_problem(ann.get('bbox'))
        if box is not None:
            problems.add('boxes with a non-positive width or height', f'{name}: {box}', 'dropped')
            continue
        if ann.get('id') in seen_ids:
            problems.add('annotations sharing an id', f'{name}', f'renumbered from {next_id} (kept)')
            ann['id'], next_id = next_id, next_id + 1
        seen_ids.add(ann.get('id'))
        if keypoints and ann.get('keypoints'):
            _check_keypoints(ann, *sizes[ann['image_id']], problems)
        kept.append(ann)
    data['annotations'] = kept

    seconds = time.perf_counter() - start
    if problems.kinds:
        print_log(f'{ann_file} ({split} set, checked in {seconds:.2f} s): {problems.summary()}', logger='current',
                  level=logging.WARNING)
    else:
        print_log(f'{ann_file}: {len(images)} images and {len(kept)} annotations checked in {seconds:.2f} s, no '
                  'problem found', logger='current', level=logging.INFO)
    return data


KEYPOINT_MARGIN = 1.0  # pixels: a point clicked on a border pixel may lie a fraction outside 0..W (and the
# synthetic people do, by up to 0.4 px); beyond one pixel it is a mistake (a wrong image, swapped x and y)


def _check_keypoints(ann: dict, width: Optional[float], height: Optional[float], problems: CocoProblems) -> None:
    """Mark labelled keypoints outside the image (0..width, 0..height, give or take `KEYPOINT_MARGIN`)
    unlabelled, counting them."""
    values = list(ann['keypoints'])
    if width is None or height is None:
        return
    low = -KEYPOINT_MARGIN
    xs, ys = values[0::3], values[1::3]
    if low <= min(xs) and max(xs) <= width + KEYPOINT_MARGIN and low <= min(ys) and max(ys) <= height + \
            KEYPOINT_MARGIN:
        return  # all inside, labelled or not: the common case, without a loop in Python
    for k in range(len(values) // 3):
        x, y, v = values[3 * k:3 * k + 3]
        if v > 0 and not (low <= x <= width + KEYPOINT_MARGIN and low <= y <= height + KEYPOINT_MARGIN):
            problems.add('labelled keypoints outside their image', f'ann {ann.get("id")} keypoint {k}: ({x}, {y}) '
                         f'in {width}x{height}', 'marked unlabelled')
            values[3 * k + 2] = 0
    ann['keypoints'] = values


__all__ = ['AnnotationError', 'MissingImagesError', 'check_coco', 'index_coco_quietly', 'load_coco_quietly',
           'load_json_annotations']
