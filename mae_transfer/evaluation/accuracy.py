"""Top-k classification accuracy (top-1 and top-5 by default) for the mmengine evaluator.

Reads what `ViTClassifier.predict` returns per image: `pred_score` (class scores [C]) and `gt_label`.
Keys are `accuracy/top1`, `accuracy/top5` in percent, as mmpretrain reports them. With fewer classes than k,
top-k is computed over all classes (100 %) and says so once in the log.
"""
import logging
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from ..registry import METRICS


def topk_accuracy(scores: torch.Tensor, labels: torch.Tensor, topk: Sequence[int] = (1, 5)) -> Dict[int, float]:
    """Percentage of rows of `scores` [N, C] whose label is among their k highest scores, for each k.

    Ties are broken by `torch.topk` (lowest index first for equal scores on CPU).
    """
    if scores.ndim != 2 or labels.shape != (scores.shape[0], ):
        raise ValueError(f'expected scores [N, C] and labels [N], got {tuple(scores.shape)} and {tuple(labels.shape)}')
    if scores.shape[0] == 0:
        raise ValueError('no predictions to score')
    largest = min(max(topk), scores.shape[1])
    top = scores.topk(largest, dim=1).indices  # [N, k_max]
    hits = top == labels[:, None]  # [N, k_max]
    return {k: 100.0 * hits[:, :min(k, largest)].any(dim=1).float().mean().item() for k in topk}


@METRICS.register_module()
class Accuracy(BaseMetric):
    """Top-k accuracy over the whole evaluation set.

    Args:
        topk: the k values reported.
        collect_device: 'cpu' or 'gpu' for gathering results across processes.
        prefix: metric name prefix; 'accuracy' when left out.
    """
    default_prefix = 'accuracy'

    def __init__(self, topk: Union[int, Tuple[int, ...]] = (1, 5), collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.topk = (topk, ) if isinstance(topk, int) else tuple(topk)
        if not self.topk or min(self.topk) < 1:
            raise ValueError(f'topk must hold positive integers, got {topk}')

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            if sample.get('gt_label') is None:
                raise ValueError('Accuracy needs gt_label in every prediction (a labelled evaluation set)')
            self.results.append((torch.as_tensor(sample['pred_score']).float().cpu(), int(sample['gt_label'])))

    def compute_metrics(self, results: List[Tuple[torch.Tensor, int]]) -> Dict[str, float]:
        scores = torch.stack([score for score, _ in results])  # [N, C]
        labels = torch.tensor([label for _, label in results])  # [N]
        if max(self.topk) > scores.shape[1]:
            print_log(f'Accuracy: only {scores.shape[1]} classes, so top-{max(self.topk)} counts every class',
                      logger='current', level=logging.WARNING)
        accuracy = topk_accuracy(scores, labels, self.topk)
        return {f'top{k}': value for k, value in accuracy.items()}


__all__ = ['Accuracy', 'topk_accuracy']
