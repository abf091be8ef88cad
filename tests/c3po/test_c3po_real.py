"""C3PO on the task world's v2 ladder (cheapest -> dearest): traces, the guarantee, greedy MPM, the price lens.

Slow: samples K = 5 answers of ~150 problems per model.
"""
from __future__ import annotations

import numpy as np
import pytest

from nblib import c3po, cost, taskworld

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real():
    import torch

    torch.set_num_threads(1)
    return c3po.task_traces(taskworld.LADDER, "test", 150, 5, verbose=False)


def test_the_ladder_has_real_quality_and_cost_gaps(real):
    acc = real.correct().mean(1)
    assert acc[0] < acc[1] < acc[2] and acc[2] > 0.85
    assert (real.cost.mean(1)[:-1] < real.cost.mean(1)[1:]).all()
    assert real.share[0][real.correct()[0]].mean() > real.share[0][~real.correct()[0]].mean()
    assert real.prompt_tokens is not None and real.greedy_tokens is not None


@pytest.mark.parametrize("mode", c3po.cascade.MODES)
def test_guarantee_on_real_traces(real, mode):
    ev = c3po.evaluate(real)
    budgets = c3po.bench.default_budgets(real, 4)
    rows = c3po.guarantee.sweep(ev, budgets, (0.05, 0.1, 0.2, 0.3), n_splits=200, mode=mode)
    assert all(r["violation"] <= r["bound"] for r in rows), [r for r in rows if r["violation"] > r["bound"]]


def test_repricing_at_the_ladder_own_flops_is_close_to_the_measured_cost(real):
    again = c3po.lens.repriced(real, c3po.lens.ladder_sheet(real))
    # per-token pricing leaves out only attention's growth with context: within a few percent per model
    np.testing.assert_allclose(again.greedy_cost.mean(1), real.greedy_cost.mean(1), rtol=0.05)
    np.testing.assert_allclose(again.cost.mean(1), real.cost.mean(1), rtol=0.05)


def test_greedy_mpm_and_the_price_lens_on_real_traces(real):
    rows = c3po.lens.versus_greedy(real, 0.1, n_splits=100)
    assert rows and all(np.isfinite(r["c3po_accuracy"]) for r in rows)
    curve = c3po.lens.break_even(real, [1.0, 1e4], n_splits=50)
    assert not curve[0]["beats_greedy"]          # equal prices: K votes on the way never cost less than one answer
    sheet = cost.price_sheet("as-if", real.models)
    assert c3po.lens.repriced(real, sheet).unit == "FLOPs"
