"""Detection / instance segmentation pictures, drawn by mmdet's `DetLocalVisualizer` (imported when called)."""
import itertools
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np

_visualizer_ids = itertools.count()  # mmengine visualizers are named instances: one fresh name per call


def draw_detections(image_rgb: np.ndarray, prediction: Any, classes: Sequence[str], out_file: Union[str, Path],
                    score_thr: float = 0.3) -> Path:
    """Draw the instances scoring at least `score_thr` (box, mask, 'class: score') and write `out_file`.

    Args:
        image_rgb: RGB uint8 [H, W, 3], the image the prediction was made on.
        prediction: an mmdet `DetDataSample` with `pred_instances`.
        classes: class names, indexed by label.
        out_file: the picture to write (its folder is created).
        score_thr: instances scoring below it are not drawn.
    """
    from mmdet.visualization import DetLocalVisualizer

    visualizer = DetLocalVisualizer(name=f'mae_transfer_detect_{next(_visualizer_ids)}')
    visualizer.dataset_meta = dict(classes=tuple(classes))
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    visualizer.add_datasample(out_file.stem, image_rgb, data_sample=prediction, draw_gt=False, show=False,
                              out_file=str(out_file), pred_score_thr=score_thr)
    return out_file


__all__ = ['draw_detections']
