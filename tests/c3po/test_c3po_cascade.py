"""The cascade rule, the conformal quantile and C3PO's threshold search: the research brief's properties 2-5."""
from __future__ import annotations

import numpy as np
import pytest

from nblib import c3po
from nblib.c3po import cascade as C


def loop_cascade(tr, tau):
    """The cascade rule written per query, as the brief states it (the reference for the vectorised one)."""
    ans, cost, exits = [], [], []
    for q in range(tr.n_queries):
        paid = 0.0
        for m in range(tr.n_models):
            if m < tr.n_models - 1 and tau[m] > 1:
                continue
            paid += tr.cost[m, q]
            if m == tr.n_models - 1 or tr.share[m, q] >= tau[m]:
                ans.append(tr.answer[m, q])
                exits.append(m)
                break
        cost.append(paid)
    return np.array(ans), np.array(cost), np.array(exits)


def test_quantile_arithmetic():
    assert C.conformal_rank(50, 0.1) == 46                     # the 46th smallest of 50
    assert C.conformal_rank(5, 0.1) == 6                       # > n: nothing can be certified
    costs = np.arange(50, 0, -1.0)                             # 50 .. 1, unsorted
    assert C.conformal_quantile(costs, 0.1) == 46.0
    assert C.conformal_quantile(np.arange(5.0), 0.1) == float("inf")
    assert C.conformal_quantile(np.arange(9.0), 0.1) == 8.0    # (9 + 1) * 0.9 = 9 exactly: the largest


def test_paper_grid_and_configs():
    np.testing.assert_allclose(c3po.paper_grid(5), [0, 0.22, 0.44, 0.66, 0.88, 1.1])
    taus = c3po.configs(c3po.paper_grid(5), 3)
    assert taus.shape == (36, 3) and (taus[:, -1] == 0).all()
    assert len({tuple(t) for t in taus}) == 36


def test_vectorised_cascade_equals_the_per_query_rule(traces):
    ev = c3po.evaluate(traces)
    for t in range(0, len(ev.taus), 5):
        ans, cost, exits = loop_cascade(traces, ev.taus[t])
        np.testing.assert_array_equal(ev.answer[t], ans)
        np.testing.assert_allclose(ev.cost[t], cost)
        np.testing.assert_array_equal(ev.exit[t], exits)
    one = C.cascade(traces, ev.taus[7][:-1])                   # the MPM's 0 may be left out
    np.testing.assert_array_equal(one["answer"], ev.answer[7])


def test_cost_is_non_decreasing_in_each_threshold_below_skip(traces):
    grid = c3po.paper_grid(traces.k)[:-1]                      # the non-skip part
    for other in grid:
        for m in range(2):
            costs = []
            for g in grid:
                tau = [other, other, 0.0]
                tau[m] = g
                costs.append(C.cascade(traces, tau)["cost"])
            assert all((b >= a - 1e-9).all() for a, b in zip(costs, costs[1:], strict=False))


def test_endpoints_are_cheapest_only_and_mpm_only(traces):
    r0 = C.cascade(traces, [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(r0["answer"], traces.answer[0])
    np.testing.assert_allclose(r0["cost"], traces.cost[0])
    r1 = C.cascade(traces, [C.SKIP, C.SKIP, 0.0])
    np.testing.assert_array_equal(r1["answer"], traces.mpm)
    np.testing.assert_allclose(r1["cost"], traces.cost[2])


def test_a_large_budget_gives_zero_regret_and_the_mpm_answers(traces):
    ss, cal, test = c3po.random_split(traces.n_queries, 50, 50)
    big = float(traces.cost.sum(0).max()) * 1.01
    f = c3po.fit(traces, ss, cal, big, 0.1)
    assert f.regret_ss == 0.0
    out = C.cascade(traces, f.tau)
    assert (out["answer"][ss] == traces.mpm[ss]).all()
    assert f.q_hat <= big and f.regret_bound() > 0


def test_regret_is_monotone_in_budget_and_alpha(traces):
    ss, cal, _ = c3po.random_split(traces.n_queries, 50, 50, seed=3)
    ev = c3po.evaluate(traces)
    budgets = np.quantile(traces.cost.sum(0), [0.05, 0.2, 0.4, 0.6, 0.8, 0.99])
    for mode in C.MODES:
        by_b = [C.choose(ev, ss, cal, b, 0.1, mode)["regret"][0] for b in budgets]
        feas = [C.choose(ev, ss, cal, b, 0.1, mode)["n_feasible"][0] for b in budgets]
        assert all(b <= a + 1e-12 for a, b in zip(by_b, by_b[1:], strict=False)), by_b
        assert all(b >= a for a, b in zip(feas, feas[1:], strict=False))
    b = float(budgets[2])
    by_a = [C.choose(ev, ss, cal, b, a, "reuse") for a in (0.3, 0.2, 0.1, 0.05)]
    regrets = [r["regret"][0] if r["feasible"][0] else np.inf for r in by_a]
    assert all(y >= x - 1e-12 for x, y in zip(regrets, regrets[1:], strict=False)), regrets
    assert all(y["n_feasible"][0] <= x["n_feasible"][0] for x, y in zip(by_a, by_a[1:], strict=False))


def test_selection_is_label_free(traces):
    ss, cal, _ = c3po.random_split(traces.n_queries)
    b = float(np.quantile(traces.cost.sum(0), 0.5))
    f = c3po.fit(traces, ss, cal, b, 0.1)
    shuffled = traces.subset(np.arange(traces.n_queries))
    shuffled.gold = np.random.default_rng(1).permutation(traces.gold)
    g = c3po.fit(shuffled, ss, cal, b, 0.1)
    np.testing.assert_array_equal(f.tau, g.tau)
    assert (f.q_hat, f.regret_ss, f.n_feasible) == (g.q_hat, g.regret_ss, g.n_feasible)
    unlabelled = traces.subset(np.arange(traces.n_queries))
    unlabelled.gold = None
    np.testing.assert_array_equal(c3po.fit(unlabelled, ss, cal, b, 0.1).tau, f.tau)
    ev = c3po.evaluate(traces)
    assert not (ev.correct == c3po.evaluate(shuffled).correct).all()   # only accuracy moved


def test_split_mode_certifies_the_tau_chosen_on_ss(traces):
    ss, cal, _ = c3po.random_split(traces.n_queries, 100, 100, seed=5)
    b = float(np.quantile(traces.cost.sum(0), 0.6))
    f = c3po.fit(traces, ss, cal, b, 0.2, mode="split")
    ev = c3po.evaluate(traces)
    t = int(np.flatnonzero((ev.taus == f.tau).all(1))[0])
    assert C.conformal_quantile(ev.cost[t, cal], 0.2) == f.q_hat <= b
    assert C.conformal_quantile(ev.cost[t, ss], 0.2) <= b      # it was feasible on D_ss, where it was chosen
    assert "split" in f.describe()


@pytest.mark.parametrize("alpha", [0, 1, -0.1, 1.5, float("nan"), True])
def test_alpha_outside_0_1_is_one_clear_error(traces, alpha):
    ss, cal, _ = c3po.random_split(traces.n_queries)
    with pytest.raises(ValueError, match="alpha"):
        c3po.fit(traces, ss, cal, 1e9, alpha)


def test_budget_below_the_cheapest_model_is_one_clear_error(traces):
    ss, cal, _ = c3po.random_split(traces.n_queries)
    floor = float(traces.cost[0, cal].min())
    with pytest.raises(ValueError, match="below the cheapest model's cost"):
        c3po.fit(traces, ss, cal, floor * 0.99, 0.1)


def test_empty_calibration_set_is_one_clear_error(traces):
    ss, _, _ = c3po.random_split(traces.n_queries)
    with pytest.raises(ValueError, match="calibration set is empty"):
        c3po.fit(traces, ss, np.array([], dtype=int), 1e9, 0.1)
    with pytest.raises(ValueError, match="calibration set is empty"):
        c3po.conformal_quantile([], 0.1)


@pytest.mark.parametrize("k", [0, -2, 2.5, True])
def test_k_below_one_is_one_clear_error(k):
    with pytest.raises(ValueError, match="K"):
        c3po.paper_grid(k)


def test_infeasible_budget_names_the_smallest_feasible_one(traces):
    ss, cal, _ = c3po.random_split(traces.n_queries)
    floor = float(traces.cost[0, cal].min())
    with pytest.raises(c3po.InfeasibleBudget, match="smallest budget"):
        c3po.fit(traces, ss, cal, floor * 1.01, 0.1)           # above the floor, below every quantile
    with pytest.raises(c3po.InfeasibleBudget, match="exceeds n"):
        c3po.fit(traces, ss, cal[:5], 1e9, 0.1)                # n = 5, alpha = 0.1: k = 6 > 5
