"""Track the encoder's features during MAE pretraining with a weighted k-NN classifier on a small labelled set.

Reconstruction pictures show that the decoder learns; they say little about the encoder. This hook embeds a
labelled bank (`data_root/train/<class>/`) and query set (`data_root/val/<class>/`) with the current encoder
every N iterations and reports the k-NN top-1 accuracy of the queries against the bank, as the usual
self-supervised monitor does (Wu et al. 2018, "Unsupervised Feature Learning via Non-Parametric Instance
Discrimination"; DINO's `eval_knn.py`):

    features L2-normalised; similarity = cosine; the k = 20 most similar bank samples vote for their class,
    each with weight exp(similarity / T), T = 0.07; the class with the largest summed weight is the prediction.

Images are resized (shorter side) and centre-cropped to the encoder's input size once, kept as a uint8 tensor,
and normalised by the model's own data preprocessor at each evaluation, exactly as training batches are; so
an evaluation costs only the forward passes. The hook times its own work against the whole run and reports
the fraction at the end.
"""
import time
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from torch import nn
from torch.utils.data import DataLoader, Dataset, default_collate

from ..registry import HOOKS
from ..utils.images import UnreadableImageError, load_rgb, log_skip_count, log_skipped
from .distributed import unwrap_model
from .sharding import full_parameters

# The timer of the cost accounting; a module attribute so tests can replace it with a fake clock.
perf_counter = time.perf_counter


def knn_accuracy(bank_features: torch.Tensor, bank_labels: torch.Tensor, query_features: torch.Tensor,
                 query_labels: torch.Tensor, num_classes: int, k: int = 20, temperature: float = 0.07,
                 chunk_size: int = 1024) -> float:
    """Top-1 accuracy (in %) of the temperature-weighted k-NN vote of Wu et al. 2018 / DINO `eval_knn`.

    Args:
        bank_features: [Nb, D] features of the labelled bank (normalised here).
        bank_labels: [Nb] class indices in [0, num_classes).
        query_features: [Nq, D] features to classify (normalised here).
        query_labels: [Nq] true class indices.
        num_classes: number of classes C.
        k: neighbours that vote; clamped to the bank size.
        temperature: T in the vote weight exp(cosine similarity / T).
        chunk_size: queries per similarity matrix (bounds memory at [chunk_size, Nb]).
    """
    if bank_features.ndim != 2 or query_features.ndim != 2 or bank_features.shape[1] != query_features.shape[1]:
        raise ValueError(f'features must be [N, D] with the same D, got bank {tuple(bank_features.shape)} and '
                         f'queries {tuple(query_features.shape)}')
    if len(bank_labels) != len(bank_features) or len(query_labels) != len(query_features):
        raise ValueError('one label per feature vector is needed')
    if len(bank_features) == 0 or len(query_features) == 0:
        raise ValueError('the bank and the query set must not be empty')
    if k < 1 or temperature <= 0:
        raise ValueError(f'k must be >= 1 and temperature > 0, got k={k}, temperature={temperature}')
    bank = F.normalize(bank_features.float(), dim=1)  # bank: [Nb, D], unit rows
    queries = F.normalize(query_features.float(), dim=1)  # queries: [Nq, D], unit rows
    bank_labels = bank_labels.to(bank.device, torch.long)  # [Nb]
    query_labels = query_labels.to(bank.device, torch.long)  # [Nq]
    k = min(k, len(bank))  # a bank smaller than k: every sample votes
    correct = 0
    for start in range(0, len(queries), chunk_size):
        chunk = queries[start:start + chunk_size].to(bank.device)  # chunk: [n, D]
        similarity = chunk @ bank.T  # similarity: [n, Nb], cosine
        top_similarity, top_index = similarity.topk(k, dim=1)  # both [n, k], most similar first
        votes = (top_similarity / temperature).exp()  # votes: [n, k], weight of each neighbour
        neighbour_labels = bank_labels[top_index]  # neighbour_labels: [n, k]
        scores = torch.zeros(len(chunk), num_classes, device=bank.device)  # scores: [n, C]
        scores.scatter_add_(1, neighbour_labels, votes)  # summed weight per class
        predictions = scores.argmax(dim=1)  # predictions: [n]
        correct += int((predictions == query_labels[start:start + chunk_size]).sum())
    return 100.0 * correct / len(queries)


class _CroppedImages(Dataset):
    """(uint8 [3, H, W] image resized on its shorter side and centre-cropped to `size`, label) per sample."""

    def __init__(self, samples: Sequence[Tuple[Path, int]], size: Tuple[int, int]) -> None:
        from torchvision.transforms import v2 as T
        self.samples = list(samples)
        self.transform = T.Compose([
            T.PILToTensor(),
            # Resize(int) resizes the shorter side; the crop then cuts the longer one, as the evaluation
            # transform of the fine-tuning recipe does (without its 256/224 margin: the set is the monitor's)
            T.Resize(min(size), interpolation=T.InterpolationMode.BICUBIC, antialias=True),
            T.CenterCrop(size),
        ])

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Optional[Tuple[torch.Tensor, int]]:
        path, label = self.samples[index]
        try:
            image = load_rgb(path)
        except UnreadableImageError as error:  # a long run: log it, leave it out (`_collate_readable` drops None)
            log_skipped(error)
            return None
        return self.transform(image), label  # [3, H, W] uint8, int


def _collate_readable(batch: List[Optional[Tuple[torch.Tensor, int]]]) -> Optional[Tuple[torch.Tensor, ...]]:
    """default_collate of the samples that were read; None for a batch of unreadable files only."""
    readable = [item for item in batch if item is not None]
    return default_collate(readable) if readable else None


def _encoder(model: nn.Module) -> nn.Module:
    """The ViT encoder of a pretrainer: `MAEPretrainer.mae`, or the model itself if it has `forward_features`."""
    encoder = getattr(model, 'mae', model)
    if not hasattr(encoder, 'forward_features'):
        raise TypeError(f'KNNMonitorHook: {type(model).__name__} has no `.mae` nor `forward_features`; '
                        f'the hook needs a ViT encoder')
    return encoder


@HOOKS.register_module()
class KNNMonitorHook(Hook):
    """Report the k-NN top-1 accuracy of the encoder's features every `interval` iterations.

    Evaluates before the first iteration (step 0, the features at initialisation, or at the resumed
    iteration), after every `interval` iterations, and after the last one unless that was just evaluated.
    Each result goes to the visualizer as scalar `knn/top1` (so into `vis_data/scalars.json`, with `step` =
    iterations done) and to the log. At the end: `knn/cost_s` and `knn/cost_fraction` (hook time / run time).

    Args:
        data_root: folder with `<bank_split>/<class>/` and `<query_split>/<class>/` (ImageNet layout); None
            switches the hook off (one log line, nothing else).
        interval: evaluate every `interval` training iterations.
        k: neighbours that vote.
        temperature: T of the vote weight exp(similarity / T).
        batch_size: images per forward pass.
        image_size: input side (int) or (height, width); the encoder's img_size when left out.
        pool: 'cls' (the cls token after the final norm, the feature of MAE's linear-probe protocol) or 'mean'
            (mean of the patch tokens). On the tiny MAE of the demo, pretrained 20 epochs, the cls token's k-NN
            top-1 rose from 20 % at initialisation to 34 % while the mean of the patch tokens stayed at 18 %.
        bank_split: sub-folder of the labelled bank.
        query_split: sub-folder of the queries; its class indices follow the bank's class list.
        num_workers: loader workers for the one-time image loading.
    """

    priority = 'LOW'

    def __init__(self, data_root: Optional[Union[str, Path]] = None, interval: int = 1000, k: int = 20,
                 temperature: float = 0.07, batch_size: int = 64,
                 image_size: Optional[Union[int, Tuple[int, int]]] = None, pool: str = 'cls',
                 bank_split: str = 'train', query_split: str = 'val', num_workers: int = 0) -> None:
        if interval < 1 or k < 1 or batch_size < 1:
            raise ValueError(f'interval, k and batch_size must be >= 1, got {interval}, {k}, {batch_size}')
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        if pool not in ('mean', 'cls'):
            raise ValueError(f"pool must be 'mean' or 'cls', got {pool!r}")
        self.data_root = Path(data_root).expanduser() if data_root is not None else None
        self.interval = interval
        self.k = k
        self.temperature = temperature
        self.batch_size = batch_size
        self.image_size = image_size
        self.pool = pool
        self.bank_split = bank_split
        self.query_split = query_split
        self.num_workers = num_workers
        # the cached set: uint8 images [N, 3, H, W] and labels [N], per split
        self.bank: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
        self.queries: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
        self.classes: List[str] = []
        # results and cost, readable by a caller (a demo) after training
        self.history: List[Tuple[int, float]] = []  # (step, top-1 %) per evaluation
        self.evaluations = 0
        self.load_s = 0.0  # loading the images once (part of cost_s)
        self.cost_s = 0.0  # everything the hook did, loading included
        self.run_s = 0.0  # before_train -> after_train
        self.cost_fraction = 0.0
        self._run_start: Optional[float] = None
        self._last_step: Optional[int] = None

    @property
    def enabled(self) -> bool:
        return self.data_root is not None

    # ---- mmengine hook points ------------------------------------------------------------------------------

    def before_train(self, runner) -> None:
        self._run_start = perf_counter()
        self.history, self.evaluations, self.cost_s, self._last_step = [], 0, 0.0, None  # one run's numbers
        if not self.enabled:
            runner.logger.info('KNNMonitorHook: off (data_root=None); set data_root to a folder with '
                               f'{self.bank_split}/<class>/ and {self.query_split}/<class>/ to switch it on')
            return
        # Check the folders on every rank, so a wrong path stops all of them at once, not only rank 0.
        for split in (self.bank_split, self.query_split):
            if not (self.data_root / split).is_dir():
                raise FileNotFoundError(f'KNNMonitorHook: {self.data_root / split} does not exist or is not a '
                                        f'folder (expected {self.data_root}/{split}/<class>/<image>)')
        if not is_main_process():
            return
        if self.bank is None:  # a second train() of the same runner reuses the cached images
            start = perf_counter()
            self._load(unwrap_model(runner.model))
            self.load_s = perf_counter() - start
            self.cost_s += self.load_s
        runner.logger.info(f'KNNMonitorHook: {len(self.bank[1])} {self.bank_split} and {len(self.queries[1])} '
                           f'{self.query_split} images of {len(self.classes)} classes under {self.data_root}, '
                           f'{tuple(self.bank[0].shape[-2:])} px, loaded in {self.load_s:.1f} s')
        with full_parameters(runner.model):
            self.evaluate(runner, step=runner.iter)

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if self.enabled and self.every_n_train_iters(runner, self.interval):
            with full_parameters(runner.model):  # every rank enters (FSDP gathers); rank 0 evaluates
                self.evaluate(runner, step=runner.iter + 1)  # runner.iter counts from 0 until the loop moves on

    def after_train(self, runner) -> None:
        if not self.enabled:
            return
        if self._last_step != runner.iter:  # after the loop, runner.iter = iterations done
            with full_parameters(runner.model):
                self.evaluate(runner, step=runner.iter)
        if not is_main_process() or self._run_start is None:
            return
        self.run_s = perf_counter() - self._run_start
        self.cost_fraction = self.cost_s / self.run_s if self.run_s > 0 else 0.0
        runner.logger.info(f'k-NN monitor: {self.evaluations} evaluations took {self.cost_s:.1f} s = '
                           f'{100 * self.cost_fraction:.1f} % of the run ({self.run_s:.1f} s)')
        runner.visualizer.add_scalars({'knn/cost_s': self.cost_s, 'knn/cost_fraction': self.cost_fraction},
                                      step=runner.iter)

    # ---- the work ------------------------------------------------------------------------------------------

    def _input_size(self, encoder: nn.Module) -> Tuple[int, int]:
        if self.image_size is None:
            return tuple(encoder.patch_embed.img_size)
        return (self.image_size, self.image_size) if isinstance(self.image_size, int) else tuple(self.image_size)

    def _read_split(self, split: str, size: Tuple[int, int], classes: Optional[List[str]]) -> Tuple[Any, ...]:
        """(uint8 images [N, 3, H, W], labels [N], class names) of one split."""
        from ..datasets.class_folder import ClassFolderDataset
        try:  # only for its file list and class indices; the images are read below
            listing = ClassFolderDataset(self.data_root / split, classes=classes)
        except FileNotFoundError as error:
            raise FileNotFoundError(f'KNNMonitorHook: {error}') from error
        loader = DataLoader(_CroppedImages(listing.samples, size), batch_size=self.batch_size,
                            num_workers=self.num_workers, shuffle=False, collate_fn=_collate_readable)
        images, labels = [], []
        for batch in loader:
            if batch is None:
                continue
            batch_images, batch_labels = batch  # batch_images: [B, 3, H, W] uint8, batch_labels: [B]
            images.append(batch_images)
            labels.append(batch_labels)
        read = sum(len(batch_labels) for batch_labels in labels)
        log_skip_count(len(listing.samples) - read, len(listing.samples), f'KNNMonitorHook, {self.data_root / split}')
        if not read:
            raise FileNotFoundError(f'KNNMonitorHook: none of the {len(listing.samples)} images under '
                                    f'{self.data_root / split} could be read (each is named in the log above)')
        return torch.cat(images), torch.cat(labels), listing.classes  # [N, 3, H, W], [N]

    def _load(self, model: nn.Module) -> None:
        size = self._input_size(_encoder(model))
        bank_images, bank_labels, self.classes = self._read_split(self.bank_split, size, None)
        # the queries take the bank's class list, so a class missing from the queries keeps its index
        query_images, query_labels, _ = self._read_split(self.query_split, size, self.classes)
        self.bank = (bank_images, bank_labels)
        self.queries = (query_images, query_labels)

    @torch.no_grad()
    def embed(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """Features [N, D] of uint8 images [N, 3, H, W]: the model's preprocessor, the unmasked encoder, the
        final norm, then the mean of the patch tokens or the cls token (not normalised yet)."""
        encoder = _encoder(model)
        preprocessor = getattr(model, 'data_preprocessor', None)
        device = next(encoder.parameters()).device
        features = []
        for start in range(0, len(images), self.batch_size):
            batch = images[start:start + self.batch_size]  # batch: [B, 3, H, W] uint8
            if preprocessor is not None:  # the same float conversion and mean/std as the training batches
                batch = preprocessor(dict(inputs=batch), False)['inputs']  # [B, 3, H, W] float, on device
            else:
                batch = batch.to(device, torch.float32)
            tokens = encoder.forward_features(batch)  # tokens: [B, 1 + L, D], cls first, after the final norm
            prefix = getattr(encoder, 'num_prefix_tokens', 1)
            pooled = tokens[:, prefix:].mean(dim=1) if self.pool == 'mean' else tokens[:, 0]  # pooled: [B, D]
            features.append(pooled.float())
        return torch.cat(features)  # [N, D]

    def evaluate(self, runner, step: int) -> Optional[float]:
        """Embed bank and queries with the current encoder, log and record the k-NN top-1; main process only."""
        self._last_step = step  # on every rank, so after_train agrees everywhere
        if not is_main_process() or self.bank is None:
            return None
        start = perf_counter()
        model = unwrap_model(runner.model)
        was_training = model.training
        model.eval()  # no drop path / dropout while embedding
        try:
            bank_features = self.embed(model, self.bank[0])  # [Nb, D]
            query_features = self.embed(model, self.queries[0])  # [Nq, D]
        finally:
            model.train(was_training)
        top1 = knn_accuracy(bank_features, self.bank[1], query_features, self.queries[1], len(self.classes),
                            k=self.k, temperature=self.temperature)
        self.cost_s += perf_counter() - start
        self.evaluations += 1
        self.history.append((step, top1))
        runner.visualizer.add_scalars({'knn/top1': top1}, step=step)
        runner.logger.info(f'k-NN top-1 (k={self.k}, T={self.temperature:g}) at iter {step}: {top1:.2f} %')
        return top1


__all__ = ['KNNMonitorHook', 'knn_accuracy']
