"""Pieces of the demo's report: training curves from mmengine's logs, plots, and a Markdown page."""
import json
import numbers
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

Series = Tuple[List[int], List[float]]


def read_scalars(work_dir: Path) -> List[dict]:
    """Every record mmengine's LocalVisBackend wrote under `<work_dir>/<timestamp>/vis_data/scalars.json`.

    Training records carry 'iter' (and 'loss', 'lr', ...), validation records 'step' and the metrics.
    Runs resumed in the same work dir add folders; their records are concatenated in time order.
    """
    records = []
    for path in sorted(Path(work_dir).glob('*/vis_data/scalars.json')):
        for line in path.read_text().splitlines():
            if line.strip():
                records.append(json.loads(line))
    return records


def training_curve(records: Sequence[dict], key: str = 'loss') -> Series:
    """(iterations, values) of one logged training scalar; where a resumed run logged an iteration again, its
    record (the later one) replaces the earlier."""
    points = {record['iter']: record[key] for record in records if 'iter' in record and key in record}
    steps = sorted(points)
    return steps, [points[step] for step in steps]


def pyplot():
    """matplotlib.pyplot on the file-only backend: works without a display."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, out: Path) -> Path:
    """Lay out, write and close `fig`; return `out`."""
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    pyplot().close(fig)
    return out


def plot_curves(series: Dict[str, Series], out: Path, title: str, ylabel: str = 'loss',
                smooth: int = 1) -> Optional[Path]:
    """One line per named series (moving average over `smooth` points); None when there is nothing to draw."""
    series = {name: s for name, s in series.items() if s[0]}
    if not series:
        return None
    fig, ax = pyplot().subplots(figsize=(5.5, 3.4), dpi=110)
    for name, (steps, values) in series.items():
        if smooth > 1 and len(values) > smooth:
            values = [sum(values[max(0, i - smooth + 1):i + 1]) / len(values[max(0, i - smooth + 1):i + 1])
                      for i in range(len(values))]
        ax.plot(steps, values, label=name, linewidth=1.4)
    ax.set_title(title)
    ax.set_xlabel('iteration')
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, out)


def numeric_metrics(metrics: Dict[str, object]) -> Dict[str, float]:
    """The numbers of an evaluator's output as plain floats (mmseg returns numpy scalars, some metrics strings)."""
    return {key: float(value) for key, value in metrics.items() if isinstance(value, (numbers.Number, np.generic))}


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(value: object) -> str:
        return f'{value:.3f}' if isinstance(value, float) else str(value)
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '|'.join('---' for _ in header) + '|']
    lines += ['| ' + ' | '.join(cell(value) for value in row) + ' |' for row in rows]
    return '\n'.join(lines)


def image_link(path: Path, report_dir: Path, caption: str, width: int = 0) -> str:
    """Markdown (or an <img> when a width is given) pointing at `path` relative to the report."""
    relative = os.path.relpath(path, report_dir)
    if width:
        return f'<img src="{relative}" alt="{caption}" width="{width}">'
    return f'![{caption}]({relative})'
