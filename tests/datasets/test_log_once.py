"""A skipped file is logged once for the whole run, however many DataLoader workers meet it (issue 29: it was
logged once per worker, and again by the fresh workers of every epoch)."""
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from mae_transfer.datasets import log_once
from mae_transfer.datasets.load_image import LoadImageSkipUnreadable


class BadImageEveryTime(Dataset):
    """Every item loads the same unreadable file through the det / seg / pose configs' image loader."""

    def __init__(self, path: Path, length: int) -> None:
        self.path, self.length = path, length
        self.load = LoadImageSkipUnreadable()  # built in the main process, as mmengine builds a pipeline

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> int:
        return int(self.load(dict(img_path=str(self.path))) is None)


def test_a_skipped_image_is_logged_once_with_two_workers_over_two_epochs(tmp_path, monkeypatch):
    bad = tmp_path / 'broken.jpg'
    bad.write_bytes(b'not a jpeg')
    lines = tmp_path / 'logged.txt'

    def record(error) -> None:  # forked workers inherit the patch; appending to a file collects all processes
        with open(lines, 'a') as f:
            f.write(f'skipped unreadable image {error.path}\n')

    monkeypatch.setattr(log_once, 'log_skipped', record)
    dataset = BadImageEveryTime(bad, length=4)
    for _ in range(2):  # not persistent: each epoch starts two fresh workers
        loader = DataLoader(dataset, batch_size=1, num_workers=2, multiprocessing_context='fork')
        assert torch.cat(list(loader)).tolist() == [1, 1, 1, 1]  # every worker met the file, each epoch
    assert lines.read_text().splitlines() == [f'skipped unreadable image {bad}']


def test_log_once_logs_each_key_once(log_records):
    assert log_once.log_once('some key of this test', 'first message')
    assert not log_once.log_once('some key of this test', 'second message')
    assert 'first message' in log_records and 'second message' not in log_records
