"""Fixtures of the STEER tests: the committed task models, test problems, a small measured frontier."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def _threads():
    """One torch thread while a STEER test module runs (the machine's cores are shared)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def task_models():
    """The committed task world v2 ladder, by role: 'tiny' = v2-tiny, 'mid' = v2-mid, 'large' = v2-large."""
    from nblib import taskworld as tw

    return {role: tw.load_model(name) for role, name in zip(("tiny", "mid", "large"), tw.models.LADDER, strict=True)}


@pytest.fixture(scope="session")
def test_problems():
    """32 held-out problems of the v2 mix."""
    from nblib import taskworld as tw

    return tw.problems.problems("test", 32, seed=5, cfg=tw.problems.V2_MIX)


@pytest.fixture(scope="session")
def small_frontier(tmp_path_factory):
    """A small frontier (12 test problems, 5 thresholds, mid run included), computed without the cache."""
    from nblib import steer

    cfg = steer.FrontierConfig(n_test=12, n_calib=40, n_thresholds=5, worked=4, seed=1)
    return steer.bench.compute_frontier(cfg)
