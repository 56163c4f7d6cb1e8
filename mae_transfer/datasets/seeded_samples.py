"""Each sample's augmentations drawn from its own seed: (seed, epoch, rank, position in the epoch).

A data-loader worker draws augmentations from the process-global `random`, `np.random` and torch generators,
so without this a sample's augmentation depends on which worker loads it and on everything that worker drew
before. Persistent workers live across epochs: a run resumed at epoch k starts fresh workers whose streams
differ from those of the uninterrupted run (the weights drifted by ~1e-3 after 3 epochs of the tiny
pretraining). Here the batch sampler tags each index with a key, and the dataset wrapper seeds the generators
from that key just for that sample: the same run draws the same augmentations whatever the number of workers,
their lifetime, a resume, or `persistent_workers`.

    train_dataloader = dict(batch_sampler=dict(type='mae_transfer.SeededBatchSampler'),
                            dataset=dict(type='mae_transfer.SeededSamples', dataset=<the dataset's config>))

tools/train.py sets this up for every config (mae_transfer.engine.seeded_loader).
"""
import random
from typing import Iterator, List, Optional, Tuple, Union

import numpy as np
import torch
from mmengine.dist import get_rank, sync_random_seed
from mmengine.registry import DATA_SAMPLERS as ROOT_DATA_SAMPLERS
from mmengine.registry import DATASETS as ROOT_DATASETS
from torch.utils.data import BatchSampler, Dataset, Sampler

from ..registry import DATA_SAMPLERS, DATASETS

SeedKey = Tuple[int, int, int, int]  # (seed, epoch, rank, position in this rank's stream of the epoch)


@DATA_SAMPLERS.register_module()
class SeededBatchSampler:
    """Yield the batches of `batch_sampler` (default: torch's BatchSampler) as lists of (index, SeedKey).

    The key is tagged after batching, so a batch sampler that reads `sampler.dataset.get_data_info(index)`
    (mmdet's AspectRatioBatchSampler) still sees plain indices. The seed is the sampler's own (mmengine derives
    it from `randomness.seed`), so augmentations are exactly as reproducible as the sample order. The epoch is
    the sampler's (set by mmengine before each epoch); a sampler without one (InfiniteSampler: a single pass
    whose positions keep counting) uses the number of passes this object has started.
    """

    def __init__(self, sampler: Sampler, batch_size: int, batch_sampler: Optional[dict] = None,
                 drop_last: bool = False) -> None:
        # mmengine's DistSamplerSeedHook and loops call `dataloader.batch_sampler.sampler.set_epoch`.
        self.sampler = sampler
        if batch_sampler is None:
            self.batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        else:  # under the current default scope: an mmdet config's AspectRatioBatchSampler resolves
            self.batch_sampler = ROOT_DATA_SAMPLERS.build(
                batch_sampler, default_args=dict(sampler=sampler, batch_size=batch_size))
        seed = getattr(sampler, 'seed', None)
        self.seed = int(sync_random_seed() if seed is None else seed)
        self.rank = get_rank()
        self.passes = 0

    def __iter__(self) -> Iterator[List[Tuple[int, SeedKey]]]:
        epoch = int(getattr(self.sampler, 'epoch', self.passes))
        self.passes += 1
        position = 0
        for batch in self.batch_sampler:
            yield [(index, (self.seed, epoch, self.rank, position + offset)) for offset, index in enumerate(batch)]
            position += len(batch)

    def __len__(self) -> int:
        return len(self.batch_sampler)

    @property
    def batch_size(self) -> int:  # read by mmengine's FlexibleRunner (FSDP / DeepSpeed) and by torch's DataLoader
        return self.batch_sampler.batch_size

    @property
    def drop_last(self) -> bool:
        return self.batch_sampler.drop_last


def seeds_of(key: SeedKey) -> Tuple[int, int, int]:
    """Three independent 32-bit seeds (python, numpy, torch) from a sample's key."""
    python_seed, numpy_seed, torch_seed = np.random.SeedSequence(list(key)).generate_state(3)
    return int(python_seed), int(numpy_seed), int(torch_seed)


@DATASETS.register_module()
class SeededSamples(Dataset):
    """Load `dataset[index]` for an (index, SeedKey) item with the global generators seeded from the key.

    The generators' previous states come back afterwards, so whatever else draws from them (the main process
    with num_workers=0, a collate function) keeps its own stream. Only torch's CPU generator is touched: CUDA
    generators are left to the training process (and must not be initialised in a forked worker). A plain
    index (a hook reading `dataset[i]`) loads unseeded. Any other attribute is the wrapped dataset's:
    `metainfo`, `get_data_info`, `full_init`, `pipeline`, ...; setting one sets it there too (mmdet's
    PipelineSwitchHook replaces `dataset.pipeline`).
    """

    def __init__(self, dataset: Union[dict, Dataset]) -> None:
        if isinstance(dataset, dict):
            # mmengine's root registry under the current default scope: an mmdet / mmseg config's types resolve
            dataset = ROOT_DATASETS.build(dataset)
        self.__dict__['dataset'] = dataset

    def __getitem__(self, item: Union[int, Tuple[int, SeedKey]]):
        if not isinstance(item, tuple):
            return self.dataset[item]
        index, key = item
        python_seed, numpy_seed, torch_seed = seeds_of(key)
        saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
        random.seed(python_seed)
        np.random.seed(numpy_seed)
        torch.random.default_generator.manual_seed(torch_seed)  # torch.manual_seed would reseed CUDA too
        try:
            return self.dataset[index]
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.set_rng_state(saved[2])

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str):
        # Dunders stay ours (a forwarded `__getitems__` would bypass the seeding); 'dataset' is missing only
        # while unpickling in a spawned worker, before __dict__ is restored.
        if name.startswith('__') or name == 'dataset':
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __setattr__(self, name: str, value) -> None:
        setattr(self.dataset, name, value)
