"""Route a config's train_dataloader through per-sample seeding (mae_transfer/datasets/seeded_samples.py)."""
from mmengine.config import ConfigDict

BATCH_SAMPLER = 'mae_transfer.SeededBatchSampler'
DATASET = 'mae_transfer.SeededSamples'


def seed_each_sample(loader: ConfigDict) -> None:
    """Wrap the loader's batch sampler and dataset so that each sample's augmentations depend on
    (seed, epoch, rank, position) only, not on the worker that loads it: exact resume with persistent workers.

    The configured batch sampler (if any) and `drop_last` move inside the wrapper (torch's DataLoader takes
    neither next to a batch sampler). A loader that already uses the wrapper, or whose dataset or batch
    sampler is a built object rather than a config, stays as it is.
    """
    batch_sampler = loader.get('batch_sampler')
    dataset = loader.get('dataset')
    if not isinstance(dataset, dict) or (batch_sampler is not None and not isinstance(batch_sampler, dict)):
        return
    if str((batch_sampler or {}).get('type', '')).endswith('SeededBatchSampler'):
        return
    loader.batch_sampler = dict(type=BATCH_SAMPLER, batch_sampler=batch_sampler,
                                drop_last=loader.pop('drop_last', False))
    if not str(dataset.get('type', '')).endswith('SeededSamples'):
        loader.dataset = dict(type=DATASET, dataset=dataset)
