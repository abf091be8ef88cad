"""The conformal cost guarantee over >= 200 random calibration / test splits (the brief's property 1)."""
from __future__ import annotations

import numpy as np
import pytest

from nblib import c3po
from nblib.c3po import cascade as C
from nblib.c3po import guarantee as G

ALPHAS = (0.05, 0.1, 0.2, 0.3)


def budgets_of(tr):
    return list(np.quantile(tr.cost.sum(0), [0.15, 0.35, 0.6, 0.85]))


@pytest.mark.parametrize("mode", C.MODES)
def test_violation_rate_within_alpha_plus_slack(traces, mode):
    ev = c3po.evaluate(traces)
    rows = G.sweep(ev, budgets_of(traces), ALPHAS, n_ss=50, n_cal=50, n_splits=300, seed=1, mode=mode)
    assert len(rows) == 16
    bad = [r for r in rows if r["violation"] > r["bound"]]
    assert not bad, bad
    # the check is not vacuous: somewhere the constraint binds (violation close to alpha)
    assert max(r["violation"] / r["alpha"] for r in rows) > 0.5


def test_violation_rate_with_larger_calibration_sets(traces):
    ev = c3po.evaluate(traces)
    rows = G.sweep(ev, budgets_of(traces), (0.1, 0.2), n_ss=100, n_cal=200, n_splits=200, seed=2)
    assert all(r["violation"] <= r["bound"] for r in rows)


def test_the_check_catches_a_procedure_that_constrains_only_the_mean_cost(traces):
    """Choosing under a mean-cost constraint (FrugalGPT's) instead of the conformal quantile over-spends the
    tail: the same check fails, so it is not vacuous."""
    ev = c3po.evaluate(traces)
    ss, cal, test = G.splits(traces.n_queries, 50, 50, 300, seed=4)
    b, alpha = float(np.quantile(traces.cost.sum(0), 0.35)), 0.1
    naive = ev.cost[:, cal].mean(-1)                                               # (T, S)
    lss = ev.disagree[:, ss].mean(-1)
    t = np.where(naive <= b, lss, np.inf).argmin(0)
    rate = (ev.cost[t[:, None], test] > b).mean(1)
    honest = G.run_splits(ev, b, alpha, ss, cal, test)
    assert rate.mean() > alpha + G.SplitRun(b, alpha, "naive", 10, t, rate, rate, rate, rate).slack()
    assert honest.violation <= alpha + honest.slack()


def test_the_split_arrays_partition_the_queries():
    ss, cal, test = G.splits(100, 20, 30, 50, seed=0)
    assert ss.shape == (50, 20) and cal.shape == (50, 30) and test.shape == (50, 50)
    allidx = np.sort(np.concatenate([ss, cal, test], 1), 1)
    assert (allidx == np.arange(100)).all()
    with pytest.raises(ValueError, match="test set"):
        G.splits(100, 50, 50)


def test_min_feasible_alpha():
    a = G.min_feasible_alpha(50)
    assert C.conformal_rank(50, a + 1e-6) <= 50 < C.conformal_rank(50, a - 1e-3)
