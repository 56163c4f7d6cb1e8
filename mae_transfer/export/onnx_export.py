"""Export a task's graph to ONNX and check it: onnxruntime against PyTorch on the same inputs, every time.

    from mae_transfer.apis import init_model
    from mae_transfer.export import export_onnx
    model = init_model(CONFIG, CHECKPOINT)
    report = export_onnx(model, 'model.onnx', opset=17)
    print(report.table()); assert report.passed

The graph (`graphs.task_graph`) takes normalised images [N, 3, H, W] with a dynamic batch axis. The check runs a
batch of another size than the traced one (so the dynamic axis is exercised) and compares each output: the
largest absolute difference, and that difference relative to the largest PyTorch value; it passes when

    max |ORT - PyTorch| <= atol x range + rtol x max |PyTorch|

for every output, where range = max - min of the PyTorch output (1 when the output is constant). `atol` is
thus relative to the output's range: a fixed absolute tolerance would pass anything on outputs as small as the
heatmaps of a random ViT-B pose head (peak 5e-5, where 1e-5 is 20 % of the range), and the check would test
nothing there. The file carries what a deployment needs
to feed it (task, input size, channel order, mean and std, class names) and the check's numbers, as ONNX
metadata under `mae_transfer.*`.
"""
import json
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..utils.configs import evaluation_dataset
from ..utils.user_errors import UserError
from .graphs import TaskGraph, task_graph
from .runtime import METADATA_PREFIX, OnnxRuntimeGraph, file_sha256

EXPORTERS = ('torchscript', 'dynamo')
DEFAULT_OPSET = 17  # LayerNormalization is one op from 17; the dynamo exporter needs 18 or later
DEFAULT_RTOL, DEFAULT_ATOL = 1e-3, 1e-5


@dataclass
class OutputDifference:
    name: str
    shape: Tuple[int, ...]
    max_abs: float
    max_reference: float  # max |PyTorch output|
    reference_range: float = 1.0  # max - min of the PyTorch output

    @property
    def relative(self) -> float:
        return self.max_abs / self.max_reference if self.max_reference > 0 else float(self.max_abs > 0)

    def tolerance(self, rtol: float, atol: float) -> float:
        """atol relative to the output's range, plus rtol relative to its largest magnitude."""
        scale = self.reference_range if self.reference_range > 0 else 1.0
        return atol * scale + rtol * self.max_reference

    def passes(self, rtol: float, atol: float) -> bool:
        return self.max_abs <= self.tolerance(rtol, atol)


@dataclass
class ExportReport:
    """What `export_onnx` wrote and measured."""
    path: Path
    task: str
    input_size: Tuple[int, int]
    opset: int
    exporter: str
    export_seconds: float
    check_batch: int
    rtol: float
    atol: float
    differences: List[OutputDifference] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(difference.passes(self.rtol, self.atol) for difference in self.differences)

    def table(self) -> str:
        """The check as printed by `mae-transfer export`."""
        height, width = self.input_size
        lines = [f'{self.path} ({self.task}, {height} x {width}, opset {self.opset}, {self.exporter} exporter, '
                 f'{self.export_seconds:.1f} s)',
                 f'onnxruntime vs PyTorch on the same random batch of {self.check_batch} '
                 f'(tolerance: max |ORT - PyTorch| <= {self.atol:g} x range + {self.rtol:g} x max |PyTorch|):',
                 f'  {"output":<10} {"shape":<22} {"max abs diff":>13} {"max |PyTorch|":>14} {"range":>10} '
                 f'{"relative":>10} {"tolerance":>10}']
        for d in self.differences:
            verdict = 'ok' if d.passes(self.rtol, self.atol) else 'TOO LARGE'
            lines.append(f'  {d.name:<10} {str(list(d.shape)):<22} {d.max_abs:>13.3e} {d.max_reference:>14.3e} '
                         f'{d.reference_range:>10.3e} {d.relative:>10.3e} {d.tolerance(self.rtol, self.atol):>10.3e}'
                         f'  {verdict}')
        lines.append('check passed' if self.passed else 'check FAILED: the exported graph differs from PyTorch')
        return '\n'.join(lines)


def _input_description(model: nn.Module, task: str) -> Dict[str, Any]:
    """How to turn an image into the graph's input: channel order, pixel range, mean and std."""
    cfg = model.cfg
    if task == 'cls':
        from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

        transform = dict(evaluation_dataset(cfg).get('transform') or {})
        return dict(channels='RGB', pixel_range=1, mean=list(transform.get('mean', IMAGENET_DEFAULT_MEAN)),
                    std=list(transform.get('std', IMAGENET_DEFAULT_STD)))
    if task == 'pretrain':
        return dict(channels='RGB', pixel_range=1, mean=list(model.pixel_mean), std=list(model.pixel_std))
    preprocessor = cfg.model.get('data_preprocessor') or {}
    return dict(channels='RGB' if preprocessor.get('bgr_to_rgb', preprocessor.get('rgb_to_bgr') is None) else 'BGR',
                pixel_range=255, mean=list(preprocessor.get('mean', [0, 0, 0])),
                std=list(preprocessor.get('std', [1, 1, 1])))


class _AdaptiveAvgPoolAsMatmul(nn.Module):
    """`nn.AdaptiveAvgPool2d` written as two averaging matrices, for a fixed input size.

    PyTorch's tracing exporter only exports adaptive pooling when the output size divides the input size, and
    UperNet's pyramid pooling (scales 1, 2, 3, 6 over a 1/32 map: 4 x 4 for 128 px, 16 x 16 for 512 px) does not.
    Bin i along a side of n covers [floor(i n / s), ceil((i + 1) n / s)), as in PyTorch, so the result is the
    same average; the matrices are constants of the graph once the input size is fixed.
    """

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    @staticmethod
    def _bins(size: int, bins: int, like: torch.Tensor) -> torch.Tensor:
        weights = torch.zeros(bins, size, dtype=like.dtype, device=like.device)  # [bins, size]
        for index in range(bins):
            start, end = (index * size) // bins, -((-(index + 1) * size) // bins)
            weights[index, start:end] = 1.0 / (end - start)
        return weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out_h, out_w = (self.output_size, self.output_size) if isinstance(self.output_size, int) else self.output_size
        height, width = int(x.shape[-2]), int(x.shape[-1])  # constants of the exported graph
        rows = self._bins(height, out_h or height, x)  # [out_h, H]
        cols = self._bins(width, out_w or width, x)  # [out_w, W]
        return rows @ x @ cols.transpose(0, 1)  # [N, C, out_h, out_w]


@contextmanager
def _exportable_pooling(module: nn.Module) -> Iterator[None]:
    """Swap every nn.AdaptiveAvgPool2d in `module` for its matrix form while exporting, then put them back."""
    swapped = []
    for parent in module.modules():
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.AdaptiveAvgPool2d):
                swapped.append((parent, name, child))
                setattr(parent, name, _AdaptiveAvgPoolAsMatmul(child.output_size))
    try:
        yield
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)


def _export(graph: TaskGraph, example: torch.Tensor, path: Path, opset: int, exporter: str) -> None:
    outputs = {name: {0: 'batch'} for name in graph.output_names}
    with warnings.catch_warnings():
        # tracer warnings about Python values taken as constants: the spatial size is fixed by design
        warnings.simplefilter('ignore')
        if exporter == 'torchscript':
            with _exportable_pooling(graph.module):
                torch.onnx.export(graph.module, (example,), str(path), input_names=['inputs'],
                                  output_names=list(graph.output_names), opset_version=opset, dynamo=False,
                                  dynamic_axes={'inputs': {0: 'batch'}, **outputs})
        else:
            batch = torch.export.Dim('batch', min=1, max=4096)
            program = torch.onnx.export(graph.module, (example,), input_names=['inputs'],
                                        output_names=list(graph.output_names), opset_version=opset, dynamo=True,
                                        dynamic_shapes={'inputs': {0: batch}}, verbose=False)
            program.save(str(path))


def _write_metadata(path: Path, entries: Dict[str, Any]) -> None:
    import onnx
    proto = onnx.load(str(path), load_external_data=False)  # external weight files stay where they are
    for key, value in entries.items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = METADATA_PREFIX + key, value if isinstance(value, str) else json.dumps(value)
    onnx.save(proto, str(path))


@torch.no_grad()
def compare_outputs(graph: TaskGraph, runtime: OnnxRuntimeGraph, inputs: torch.Tensor) -> List[OutputDifference]:
    """Per output: the largest |onnxruntime - PyTorch|, the largest |PyTorch| and its range on `inputs`."""
    expected = graph.module(inputs)
    expected = expected if isinstance(expected, tuple) else (expected,)
    actual = runtime(inputs)
    actual = actual if isinstance(actual, tuple) else (actual,)
    return [OutputDifference(name, tuple(ref.shape), float((out.float() - ref.float()).abs().max()),
                             float(ref.float().abs().max()), float(ref.float().max() - ref.float().min()))
            for name, ref, out in zip(graph.output_names, expected, actual)]


class ExportOptionError(ValueError, UserError):
    """An export option the exporter cannot honour (opset, input size, exporter name)."""


def check_export_options(opset: int, exporter: str, input_size: Optional[Sequence[int]] = None) -> None:
    """Raise `ExportOptionError` (one line) for an exporter, opset or input size that cannot work, before any
    model is loaded.

    Args:
        opset: ONNX opset: 14 (scaled dot-product attention) to the exporter's newest (torchscript: 20).
        exporter: one of `EXPORTERS`.
        input_size: (height, width) in pixels, both >= 1; None for the config's size.
    """
    from torch.onnx import _constants
    if exporter not in EXPORTERS:
        raise ExportOptionError(f'unknown exporter {exporter!r}; expected one of {EXPORTERS}')
    newest = (_constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET if exporter == 'torchscript'
              else _constants.ONNX_MAX_OPSET)
    oldest = 18 if exporter == 'dynamo' else 14
    if not oldest <= opset <= newest:
        raise ExportOptionError(f'--opset {opset}: the {exporter} exporter writes opsets {oldest} to {newest}')
    if input_size is not None and (len(input_size) != 2 or min(int(side) for side in input_size) < 1):
        raise ExportOptionError(f'--input-size {" ".join(map(str, input_size))}: give HEIGHT WIDTH in pixels, '
                                'both at least 1')


def export_onnx(model: nn.Module, out: Union[str, Path], opset: int = DEFAULT_OPSET, exporter: str = 'torchscript',
                input_size: Optional[Tuple[int, int]] = None, checkpoint: Optional[str] = None,
                rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL, trace_batch: int = 2,
                check_batch: int = 3, seed: int = 0) -> ExportReport:
    """Export a model's graph to `out` and check it against PyTorch.

    Args:
        model: from `mae_transfer.apis.init_model` (eval mode; carries `.cfg`).
        out: the .onnx file (its folder is created).
        opset: ONNX opset (torchscript exporter: 14 or later, for scaled dot-product attention; dynamo: 18+).
        exporter: 'torchscript' (torch.onnx's tracing exporter) or 'dynamo' (torch.export based).
        input_size: (height, width) to export at; the task's size from the config when left out.
        checkpoint: the weights' file, recorded in the metadata (name and sha256).
        rtol, atol: the check's tolerance: max |ORT - PyTorch| <= atol x range + rtol x max |PyTorch| per output
            (the module docstring).
        trace_batch, check_batch: batch sizes traced and checked (they differ to exercise the dynamic axis).
        seed: seed of the random inputs.
    """
    check_export_options(opset, exporter, input_size)
    model.eval()
    graph = task_graph(model)
    size = tuple(int(side) for side in (input_size or graph.input_size))
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    example = torch.randn(trace_batch, 3, *size, generator=generator).to(device)
    check_inputs = torch.randn(check_batch, 3, *size, generator=generator).to(device)
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    _export(graph, example, path, opset, exporter)
    seconds = time.perf_counter() - start

    report = ExportReport(path, graph.task, size, opset, exporter, seconds, check_batch, rtol, atol)
    report.differences = compare_outputs(graph, OnnxRuntimeGraph(path, device), check_inputs)
    classes = list((getattr(model, 'dataset_meta', None) or {}).get('classes') or [])
    _write_metadata(path, dict(
        task=graph.task, input_size=list(size), input=_input_description(model, graph.task),
        outputs=list(graph.output_names), opset=str(opset), exporter=exporter,
        config=str(getattr(model.cfg, 'filename', '') or ''), classes=classes,
        checkpoint=(dict(name=Path(checkpoint).name, sha256=file_sha256(checkpoint)) if checkpoint else None),
        check=dict(batch=check_batch, rtol=rtol, atol=atol, atol_relative_to='range',
                   outputs={d.name: dict(max_abs=d.max_abs, relative=d.relative, range=d.reference_range)
                            for d in report.differences})))
    return report


__all__ = ['DEFAULT_ATOL', 'DEFAULT_OPSET', 'DEFAULT_RTOL', 'EXPORTERS', 'ExportOptionError', 'ExportReport',
           'OutputDifference', 'check_export_options', 'compare_outputs', 'export_onnx']
