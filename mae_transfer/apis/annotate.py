"""Run a model over images, folders of images and videos: annotated pictures or videos, and JSON lines.

    from mae_transfer.apis import init_model
    from mae_transfer.apis.annotate import annotate
    model = init_model(CONFIG, CHECKPOINT)
    annotate(model, ['clip.mp4', 'photos/', 'one.jpg'], 'work_dirs/infer', json_lines=True)

What each input gives in `out_dir`:

    clip.mp4     clip.mp4 (annotated, same frame rate and size)   clip.jsonl (one line per frame)
    photos/      photos/<stem>.<png|jpg> (one picture per image)  photos.jsonl (one line per image)
    one.jpg      one.<png|jpg>                                    images.jsonl (one line per image file given)

A line holds the frame index and time (videos) or the file name (images), then the task's result as its
module's `to_json` writes it (det instances with RLE masks, seg segments, pose persons, cls top-k). Each task's
module in `mae_transfer.apis` provides `inference`, `render` and `to_json`; this module only loops, reads and
writes. Video is offered for det, seg and pose, whose drawings keep the frame's size; pose takes person boxes
per frame from a detector (`person_detector`), from a box file matched by name, or uses the whole frame.
"""
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from torch import nn

from ..utils.configs import config_task
from .inference import task_module
from ..utils.images import UnreadableImageError, log_skipped
from .media import (JsonLinesWriter, MediaError, VideoReader, VideoWriter, is_video, list_images, progress,
                    read_image)

PathLike = Union[str, Path]
VIDEO_TASKS = ('det', 'seg', 'pose')
BoxSource = Callable[[np.ndarray], Tuple[np.ndarray, List[float]]]  # BGR image -> boxes [N, 4] xywh, scores


class FrameAnnotator:
    """Predict, draw and describe one BGR frame with a model of any task but pretraining.

    Args:
        model: from `mae_transfer.apis.init_model` (any backend).
        score_thr: what is drawn (det instances, pose keypoints); the task's default when None.
        boxes: pose: {image name or path: (boxes [N, 4] xywh, scores)} (`pose.load_boxes`).
        person_detector: pose: boxes of a frame's persons (e.g. `detect.person_boxes` bound to a detector);
            used for every frame without an entry in `boxes`.
        **options: the task's own options: seg `alpha`, `mode`; pose `nms_thr`; cls `topk`.
    """

    def __init__(self, model: nn.Module, score_thr: Optional[float] = None,
                 boxes: Optional[Dict[str, Tuple[np.ndarray, List[float]]]] = None,
                 person_detector: Optional[BoxSource] = None, **options: Any):
        self.task = config_task(model.cfg)
        if self.task == 'pretrain':
            raise ValueError('a pretraining config draws reconstructions, not per-image predictions: use '
                             '`mae-transfer visualize` or `apis.reconstruct.infer_images`')
        self.model, self.module = model, task_module(model.cfg)
        self.score_thr, self.boxes, self.person_detector = score_thr, boxes or {}, person_detector
        self.options = options

    @property
    def picture_suffix(self) -> str:
        return self.module.PICTURE_SUFFIX

    def predict(self, image: np.ndarray, name: str = '') -> Any:
        """The task's result for one BGR image (`name`: the file, to find its pose boxes)."""
        if self.task == 'pose':
            boxes, scores = self.boxes.get(name, self.boxes.get(Path(name).name, (None, None)))
            if boxes is None and self.person_detector is not None:
                boxes, scores = self.person_detector(image)
                if len(boxes) == 0:
                    return []  # nobody in this frame: no whole-frame guess
            return self.module.estimate(self.model, image, boxes, scores, nms_thr=self.options.get('nms_thr', 0.9))
        keys = {'seg': ('mode',), 'cls': ('topk',)}.get(self.task, ())
        return self.module.inference(self.model, [image], **{k: self.options[k] for k in keys
                                                             if self.options.get(k) is not None})[0]

    def draw(self, image: np.ndarray, result: Any, same_size: bool = False) -> np.ndarray:
        """The result drawn on a copy of the image (BGR); `same_size` keeps the image's size (video frames)."""
        options = dict(alpha=self.options['alpha']) if 'alpha' in self.options else {}
        return self.module.render(self.model, image, result, score_thr=self.score_thr, legend=not same_size,
                                  **options)

    def describe(self, result: Any) -> Dict[str, Any]:
        return self.module.to_json(self.model, result)


def write_pictures(model: nn.Module, image_paths: Sequence[PathLike], out_dir: PathLike,
                   **options: Any) -> List[Path]:
    """One annotated picture per image file, `<out_dir>/<stem><task's suffix>`, in input order (the per-task
    `infer_images`). An image that cannot be read stops with an error naming it: these files were asked for."""
    annotator = FrameAnnotator(model, **options)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in image_paths:
        image = read_image(path)
        target = out / f'{Path(path).stem}{annotator.picture_suffix}'
        _save(target, annotator.draw(image, annotator.predict(image, str(path))))
        written.append(target)
    return written


def _save(path: Path, image: np.ndarray) -> None:
    import cv2
    if not cv2.imwrite(str(path), image):
        raise OSError(f'cannot write {path}')


def _images(annotator: FrameAnnotator, paths: Sequence[Path], folder: Path, records: Optional[JsonLinesWriter],
            skip_unreadable: bool) -> List[Path]:
    written = []
    folder.mkdir(parents=True, exist_ok=True)
    for path in progress(paths, len(paths), desc=folder.name or 'images'):
        try:
            image = read_image(path)
        except UnreadableImageError as error:
            if not skip_unreadable:
                raise
            log_skipped(error)
            continue
        result = annotator.predict(image, str(path))
        target = folder / f'{path.stem}{annotator.picture_suffix}'
        _save(target, annotator.draw(image, result))
        written.append(target)
        if records is not None:
            records.write(dict(file=path.name, **annotator.describe(result)))
    return written


def _video(annotator: FrameAnnotator, path: Path, out_dir: Path, json_lines: bool) -> Path:
    """Annotate every frame of a video into `<out_dir>/<stem>.mp4` (and `<stem>.jsonl`). A video that stops early
    keeps what was written, and the error says how much that is."""
    if annotator.task not in VIDEO_TASKS:
        raise MediaError(f'video inference covers {", ".join(VIDEO_TASKS)}; a {annotator.task} model annotates '
                         'images and folders')
    target = out_dir / f'{path.stem}.mp4'
    if target.resolve() == path.resolve():
        raise MediaError(f'{target} would overwrite the input video: choose another --out-dir')
    records = JsonLinesWriter(out_dir / f'{path.stem}.jsonl') if json_lines else None
    with VideoReader(path) as video:
        info = video.info
        with VideoWriter(target, info.fps, (info.width, info.height)) as writer:
            try:
                bar = progress(video, info.frame_count or None, desc=path.name)
                for index, frame in enumerate(bar):
                    result = annotator.predict(frame)
                    writer.write(annotator.draw(frame, result, same_size=True))
                    if records is not None:
                        records.write(dict(frame=index, time_s=round(index / info.fps, 4),
                                           **annotator.describe(result)))
            except MediaError as error:
                raise MediaError(f'{error} ({writer.frames_written} annotated frames written to {target})') from error
            finally:
                if records is not None:
                    records.close()
    return target


def annotate(model: nn.Module, inputs: Sequence[PathLike], out_dir: PathLike, json_lines: bool = False,
             **options: Any) -> List[Path]:
    """Annotate image files, folders of images and videos (see the module docstring for what goes where).

    Args:
        model: from `mae_transfer.apis.init_model`.
        inputs: image files, folders and video files, in any mix.
        out_dir: where everything goes (created).
        json_lines: also write the results as JSON lines.
        **options: `FrameAnnotator` options (score_thr, boxes, person_detector, alpha, mode, nms_thr, topk).

    Returns:
        the pictures and videos written.
    """
    annotator = FrameAnnotator(model, **options)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: List[Path] = []
    images = [Path(p) for p in inputs if not Path(p).is_dir() and not is_video(p)]
    for source in map(Path, inputs):
        if source.is_dir():
            with _OptionalJsonLines(out / f'{source.name}.jsonl', json_lines) as records:
                # a folder is a long run: an unreadable file is logged and skipped
                written += _images(annotator, list_images(source), out / source.name, records, skip_unreadable=True)
        elif is_video(source):
            written.append(_video(annotator, source, out, json_lines))
    if images:
        with _OptionalJsonLines(out / 'images.jsonl', json_lines) as records:
            written += _images(annotator, images, out, records, skip_unreadable=False)
    return written


class _OptionalJsonLines:
    """A JsonLinesWriter when asked for, else a context that yields None."""

    def __init__(self, path: Path, enabled: bool):
        self.writer = JsonLinesWriter(path) if enabled else None

    def __enter__(self) -> Optional[JsonLinesWriter]:
        return self.writer

    def __exit__(self, *exc: Any) -> None:
        if self.writer is not None:
            self.writer.close()


__all__ = ['FrameAnnotator', 'VIDEO_TASKS', 'annotate', 'write_pictures']
