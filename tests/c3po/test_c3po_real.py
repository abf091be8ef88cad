"""C3PO on the task world's real ladder (tiny -> mid -> large): traces, the guarantee, the goal (slow: samples ~150 problems)."""
from __future__ import annotations

import numpy as np
import pytest

from nblib import c3po

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real():
    import torch

    torch.set_num_threads(1)
    return c3po.task_traces(("tiny", "mid", "large"), "test", 150, 5, verbose=False)


def test_the_ladder_has_real_quality_and_cost_gaps(real):
    acc = real.correct().mean(1)
    assert acc[0] < acc[1] < acc[2] and acc[2] > 0.9
    assert (real.cost.mean(1)[:-1] < real.cost.mean(1)[1:]).all()
    assert real.share[0][real.correct()[0]].mean() > real.share[0][~real.correct()[0]].mean()


@pytest.mark.parametrize("mode", c3po.cascade.MODES)
def test_guarantee_on_real_traces(real, mode):
    ev = c3po.evaluate(real)
    budgets = [600e6, 1000e6, 1500e6, 2000e6]
    rows = c3po.guarantee.sweep(ev, budgets, (0.05, 0.1, 0.2, 0.3), n_splits=200, mode=mode)
    assert all(r["violation"] <= r["bound"] for r in rows), [r for r in rows if r["violation"] > r["bound"]]
    mid = [r for r in rows if r["budget"] == 1000e6 and r["alpha"] == 0.1][0]
    assert mid["accuracy"] > (real.answer[0] == real.gold).mean()      # better than the cheapest model alone
    assert np.isfinite(mid["mean_cost"]) and mid["mean_cost"] < real.cost[-1].mean()
