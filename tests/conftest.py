import logging

import pytest
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope


@pytest.fixture(autouse=True)
def _isolated_default_scope():
    """Tests switch default scopes (mmdet, mmseg, mae_transfer); do not let one leak into the next."""
    before = dict(DefaultScope._instance_dict)
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(before)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def log_records():
    """The messages logged through mmengine's current logger (where `print_log(logger='current')` goes)."""
    logger = MMLogger.get_current_instance()
    records = _Records()
    logger.addHandler(records)
    yield records.messages
    logger.removeHandler(records)
