"""Seeds to statements: mean and range per start, and the verdict the demo is built to test.

The claim is deliberately strict: the MAE start's mean must beat the random start's best seed. A mean that
is ahead only within the seeds' spread is reported as such, not as a win.
"""
from dataclasses import dataclass
from statistics import mean
from typing import Dict, Iterable, List, Sequence

from .plan import TASKS

AP_FLOOR = 0.02  # below this on every seed of both starts, a COCO AP comparison says nothing


@dataclass(frozen=True)
class Spread:
    values: tuple

    @property
    def mean(self) -> float:
        return mean(self.values) if self.values else float('nan')

    @property
    def low(self) -> float:
        return min(self.values) if self.values else float('nan')

    @property
    def high(self) -> float:
        return max(self.values) if self.values else float('nan')

    def text(self, digits: int) -> str:
        if len(self.values) < 2:
            return f'{self.mean:.{digits}f}'
        return f'{self.mean:.{digits}f} ({self.low:.{digits}f}-{self.high:.{digits}f})'


@dataclass(frozen=True)
class Comparison:
    task: str
    metric: str  # the evaluator's key
    title: str  # the column title
    labels: int
    mae: Spread
    random: Spread

    @property
    def digits(self) -> int:  # COCO APs are fractions, mIoU / accuracy percentages
        return 3 if max(self.mae.values + self.random.values, default=0) <= 1.0 else 1

    @property
    def learned(self) -> bool:
        """False when no seed of either start reached the floor: a COCO AP below 0.02 is noise, not a result."""
        return self.digits == 1 or max(self.mae.values + self.random.values) >= AP_FLOOR

    @property
    def verdict(self) -> str:
        if not self.mae.values or not self.random.values:
            return 'not measured'
        if not self.learned:
            return f'not learned from either start in this budget (AP < {AP_FLOOR})'
        if self.mae.mean > self.random.high:
            return 'MAE better (mean above every random seed)'
        if self.mae.mean > self.random.mean:
            return 'MAE ahead on average, within the seeds\' spread'
        return 'no gain from MAE here'

    @property
    def wins(self) -> bool:
        return self.verdict.startswith('MAE better')


def compare(results: Iterable, tasks: Sequence[str]) -> List[Comparison]:
    """One Comparison per task metric at the task's own budget (results: FineTuneResult-like objects)."""
    values: Dict[tuple, List[float]] = {}
    for result in results:
        run = result.run
        for key in TASKS[run.task].metrics:
            if key in result.metrics:  # a metric the evaluator did not report is 'not measured', not a number
                values.setdefault((run.task, key, run.labels, run.init), []).append(result.metrics[key])
    comparisons = []
    for name in tasks:
        task = TASKS[name]
        for key, title in task.metrics.items():
            comparisons.append(Comparison(name, key, title, task.labels,
                                          Spread(tuple(values.get((name, key, task.labels, 'mae'), ()))),
                                          Spread(tuple(values.get((name, key, task.labels, 'random'), ())))))
    return comparisons


def label_curve(results: Iterable, task: str, key: str) -> Dict[str, Dict[int, Spread]]:
    """init -> labelled budget -> spread of `key` over the seeds, for the label-efficiency picture."""
    values: Dict[str, Dict[int, List[float]]] = {}
    for result in results:
        run = result.run
        if run.task == task and key in result.metrics:
            values.setdefault(run.init, {}).setdefault(run.labels, []).append(result.metrics[key])
    return {init: {labels: Spread(tuple(v)) for labels, v in sorted(budgets.items())}
            for init, budgets in values.items()}
