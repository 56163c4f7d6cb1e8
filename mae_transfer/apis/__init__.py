"""Inference: `init_model(config, checkpoint)` and `inference(model, images)` for every task.

The task is read from the config (`mae_transfer.utils.configs.config_task`). One module per task (`detect`,
`segment`, `pose`, `classify`, `reconstruct`), each with `init_model`, `inference` and `infer_images` (pictures
into a folder). `annotate` runs a model over images, folders and videos (what tools/infer.py calls) through the
task modules' `render` and `to_json`; `media` reads and writes videos. Pictures are drawn by
`mae_transfer.visualization`.
"""
from .inference import TASK_MODULES, inference, init_model, task_module

__all__ = ['TASK_MODULES', 'inference', 'init_model', 'task_module']
