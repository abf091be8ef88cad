"""Fixtures of the task-world tests."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def _threads():
    """At most two torch threads while a task-world test module runs (the machine has two cores)."""
    old = torch.get_num_threads()
    torch.set_num_threads(min(2, old))
    yield
    torch.set_num_threads(old)
