"""Take a trained model out of the toolkit: ONNX export checked against PyTorch, and the onnxruntime backend.

`graphs` says what each task exports (the network between the data pipeline and the decoding) and how a runtime
takes its place; `onnx_export` writes and checks the file; `runtime` runs it with onnxruntime inside our own
inference and evaluation. onnx and onnxruntime are imported when used.
"""
from .graphs import TaskGraph, task_graph
from .onnx_export import (DEFAULT_ATOL, DEFAULT_OPSET, DEFAULT_RTOL, EXPORTERS, ExportOptionError, ExportReport,
                          OutputDifference, check_export_options, compare_outputs, export_onnx)
from .runtime import GraphMismatchError, OnnxRuntimeGraph, attach_onnxruntime

__all__ = ['DEFAULT_ATOL', 'DEFAULT_OPSET', 'DEFAULT_RTOL', 'EXPORTERS', 'ExportOptionError', 'ExportReport',
           'GraphMismatchError', 'OnnxRuntimeGraph', 'OutputDifference', 'TaskGraph', 'attach_onnxruntime',
           'check_export_options', 'compare_outputs', 'export_onnx', 'task_graph']
