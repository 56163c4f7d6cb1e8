"""Detection / instance segmentation pictures, drawn by mmdet's `DetLocalVisualizer` (imported when called)."""
import functools
import itertools
from pathlib import Path
from typing import Any, Sequence, Tuple, Union

import numpy as np
from PIL import Image

_visualizer_ids = itertools.count()  # mmengine visualizers are named instances: one fresh name per class list


@functools.lru_cache(maxsize=8)
def _visualizer(classes: Tuple[str, ...]) -> Any:
    """One visualizer per class list: mmengine keeps every named instance alive, so a video must not make one per
    frame."""
    from mmdet.visualization import DetLocalVisualizer
    visualizer = DetLocalVisualizer(name=f'mae_transfer_detect_{next(_visualizer_ids)}')
    visualizer.dataset_meta = dict(classes=classes)
    return visualizer


def render_detections(image_rgb: np.ndarray, prediction: Any, classes: Sequence[str],
                      score_thr: float = 0.3) -> np.ndarray:
    """The instances scoring at least `score_thr` (box, mask, 'class: score') drawn on a copy of the image.

    Args:
        image_rgb: RGB uint8 [H, W, 3], the image the prediction was made on.
        prediction: an mmdet `DetDataSample` with `pred_instances`.
        classes: class names, indexed by label.
        score_thr: instances scoring below it are not drawn.

    Returns:
        RGB uint8 [H, W, 3].
    """
    visualizer = _visualizer(tuple(classes))
    visualizer.add_datasample('prediction', image_rgb, data_sample=prediction, draw_gt=False, show=False,
                              pred_score_thr=score_thr)
    return visualizer.get_image()


def draw_detections(image_rgb: np.ndarray, prediction: Any, classes: Sequence[str], out_file: Union[str, Path],
                    score_thr: float = 0.3) -> Path:
    """`render_detections` written to `out_file` (its folder is created)."""
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(render_detections(image_rgb, prediction, classes, score_thr)).save(out_file)
    return out_file


__all__ = ['draw_detections', 'render_detections']
