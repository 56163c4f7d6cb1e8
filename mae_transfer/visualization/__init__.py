"""Pictures of predictions, one module per task, apart from the inference code (`mae_transfer.apis`).

Every function takes an image and a task's result and returns (or writes) a picture; none runs a model.
Colours, fonts and legends shared by the tasks are in `palette`.
"""
from .cls import draw_classification
from .det import draw_detections, render_detections
from .palette import confidence_colour, font, legend, random_palette
from .pose import draw_pose
from .reconstruction import reconstruction_grid
from .seg import draw_segmentation

__all__ = ['confidence_colour', 'draw_classification', 'draw_detections', 'draw_pose', 'draw_segmentation', 'font',
           'legend', 'random_palette', 'reconstruction_grid', 'render_detections']
