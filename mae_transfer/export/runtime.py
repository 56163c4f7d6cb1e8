"""Run an exported graph with onnxruntime in place of the PyTorch network it came from.

    from mae_transfer.apis import init_model, inference
    from mae_transfer.export import attach_onnxruntime
    model = init_model(CONFIG, CHECKPOINT)
    attach_onnxruntime(model, 'model.onnx')   # the exported part now runs in onnxruntime
    results = inference(model, ['a.jpg'])      # same pipeline, decoding and pictures as PyTorch

The checkpoint still provides what the graph does not hold (detection's RPN and RoI heads) and the class names;
`mae-transfer infer/test --backend onnxruntime --onnx FILE` do exactly this.
"""
import hashlib
import json
import logging
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from mmengine.logging import print_log
from torch import nn

from ..utils.user_errors import UserError
from .graphs import task_graph

METADATA_PREFIX = 'mae_transfer.'


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as error:  # part of the project's stack; a bare environment may lack it
        raise ImportError('the onnxruntime backend needs the onnxruntime package: pip install onnxruntime') from error
    return onnxruntime


def file_sha256(path: Union[str, Path], chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


class GraphMismatchError(ValueError, UserError):
    """The ONNX file does not fit the run: inputs of another size than the exported one, or another task's
    graph. One line, with what to do (re-export with `--input-size`, or pick the right file or config)."""


class OnnxRuntimeGraph:
    """An onnxruntime session called like the PyTorch graph it replaces: tensors in, tensors out, same device.

    It is a plain callable, not an nn.Module, so that it can shadow a model's method (see `graphs.TaskGraph`).

    Args:
        path: the .onnx file written by `export_onnx`.
        device: where outputs go; on a CUDA device the session uses onnxruntime's CUDA provider when it has one.
    """

    def __init__(self, path: Union[str, Path], device: Union[str, torch.device] = 'cpu'):
        ort = import_onnxruntime()
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f'ONNX file not found: {self.path}')
        self.device = torch.device(device)
        providers = ['CPUExecutionProvider']
        if self.device.type == 'cuda' and 'CUDAExecutionProvider' in ort.get_available_providers():
            providers.insert(0, 'CUDAExecutionProvider')
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: its shape-inference warnings are not the user's concern
        self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        (self.input,) = self.session.get_inputs()
        self.output_names = [output.name for output in self.session.get_outputs()]
        self.metadata: Dict[str, str] = {
            key[len(METADATA_PREFIX):]: value
            for key, value in self.session.get_modelmeta().custom_metadata_map.items()
            if key.startswith(METADATA_PREFIX)}
        self.calls = 0

    @property
    def input_size(self) -> Tuple[Optional[int], Optional[int]]:
        """The (height, width) the graph takes; None for a dynamic side."""
        height, width = self.input.shape[-2:]
        return (height if isinstance(height, int) else None, width if isinstance(width, int) else None)

    def __call__(self, inputs: torch.Tensor) -> Union[torch.Tensor, Tuple[torch.Tensor, ...]]:
        expected = self.input_size
        got = tuple(inputs.shape[-2:])
        if any(side is not None and side != actual for side, actual in zip(expected, got)):
            raise GraphMismatchError(f'{self.path.name} takes inputs of {expected[0]} x {expected[1]} '
                                     f'(the exported size); got {got[0]} x {got[1]}: export at this size with '
                                     f'`mae-transfer export ... --input-size {got[0]} {got[1]}`')
        array = inputs.detach().float().cpu().numpy()  # the graph is fp32; an amp caller's bf16 is cast here
        outputs: List[np.ndarray] = self.session.run(self.output_names, {self.input.name: array})
        self.calls += 1
        tensors = tuple(torch.from_numpy(output).to(self.device) for output in outputs)
        return tensors[0] if len(tensors) == 1 else tensors


def attach_onnxruntime(model: nn.Module, onnx_file: Union[str, Path], checkpoint: Optional[str] = None
                       ) -> OnnxRuntimeGraph:
    """Make `model` (from `mae_transfer.apis.init_model`, or a runner's model with `.cfg`) run its exported part
    in onnxruntime. The graph's task must be the model's; when `checkpoint` is given and differs from the one the
    graph was exported from, a warning says so (the same weights may live in another file).

    Returns:
        the runtime (its `calls` counts the graph's runs).
    """
    graph = task_graph(model)
    device = next(model.parameters()).device
    runtime = OnnxRuntimeGraph(onnx_file, device=device)
    task = runtime.metadata.get('task')
    if task is not None and task != graph.task:
        raise GraphMismatchError(f'{onnx_file} was exported from a {task} model; this config is a {graph.task} model')
    exported_from = json.loads(runtime.metadata.get('checkpoint', 'null'))
    if checkpoint is not None and exported_from and exported_from.get('sha256') != file_sha256(checkpoint):
        print_log(f'{onnx_file} was exported from {exported_from.get("name")}, not from {checkpoint}: the parts '
                  'outside the graph come from the latter', logger='current', level=logging.WARNING)
    graph.attach(model, runtime)
    return runtime


__all__ = ['METADATA_PREFIX', 'GraphMismatchError', 'OnnxRuntimeGraph', 'attach_onnxruntime', 'file_sha256',
           'import_onnxruntime']
