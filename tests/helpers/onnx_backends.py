"""Evaluate one checkpoint twice through tools/test.py, with PyTorch and with its ONNX export in onnxruntime."""
import json
from pathlib import Path
from typing import Dict, List, Tuple

from mae_transfer.export import OnnxRuntimeGraph
from mae_transfer.tools.export import main as export_main
from mae_transfer.tools.test import main as test_main


def metrics_of_both_backends(config: str, checkpoint: str, work_dir: Path, cfg_options: List[str],
                             monkeypatch) -> Tuple[Dict[str, float], Dict[str, float], int]:
    """(PyTorch metrics, onnxruntime metrics, runs of the ONNX graph) of `checkpoint` on its config's test set."""
    work_dir.mkdir(parents=True, exist_ok=True)
    options = ['--cfg-options', *cfg_options] if cfg_options else []
    onnx = work_dir / 'model.onnx'
    assert export_main([config, checkpoint, '--out', str(onnx), *options]) == 0
    calls = []
    original = OnnxRuntimeGraph.__call__
    monkeypatch.setattr(OnnxRuntimeGraph, '__call__', lambda self, inputs: calls.append(1) or original(self, inputs))
    metrics = {}
    for backend in ('pytorch', 'onnxruntime'):
        out = work_dir / f'{backend}_metrics.json'
        runtime = ['--backend', 'onnxruntime', '--onnx', str(onnx)] if backend == 'onnxruntime' else []
        test_main([config, checkpoint, '--work-dir', str(work_dir / backend), '--out', str(out), *runtime, *options])
        metrics[backend] = json.loads(out.read_text())
    return metrics['pytorch'], metrics['onnxruntime'], len(calls)
