"""Property tests (hypothesis) for nblib.c3po's public entry points, on a tiny synthetic cascade (no model): any
input gives a valid result (a certified fit whose calibration quantile is within the budget, a conformal quantile
that is one of the costs) or a ValueError / TypeError / KeyError naming the argument (issue 23)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nblib import c3po
from property_helpers import FAST, named

ANY = st.one_of(st.none(), st.booleans(), st.integers(-5, 300), st.floats(allow_nan=True, allow_infinity=True),
                st.text(max_size=3), st.lists(st.integers(), max_size=2), st.integers(-3, 50).map(np.int64),
                st.floats(-1, 2).map(np.float32))
ALPHA = st.one_of(st.floats(-0.5, 1.5), st.floats(allow_nan=True, allow_infinity=True), ANY)
Q = 80


def tiny_traces(q: int = Q, seed: int = 0) -> c3po.CascadeTraces:
    """Three models on q queries, K = 4: shares in {0, .25, .., 1}, continuous costs rising with the model."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, 5, q)
    answer = np.where(rng.random((3, q)) < np.array([[0.4], [0.7], [0.95]]), gold, rng.integers(5, 8, (3, q)))
    share = rng.integers(1, 5, (3, q)) / 4
    cost = np.array([[1.0], [5.0], [14.0]]) * rng.lognormal(0, 0.3, q)
    return c3po.CascadeTraces(["cheap", "mid", "strong"], 4, answer, share, cost, np.round(cost).astype(int),
                              gold=gold)


TRACES = tiny_traces()
EV = c3po.evaluate(TRACES)


@FAST
@given(ALPHA)
def test_check_alpha_is_strictly_between_0_and_1_or_names_alpha(a):
    try:
        v = c3po.check_alpha(a)
    except ValueError as e:
        assert "alpha" in str(e)
    else:
        assert type(v) is float and 0 < v < 1


@FAST
@given(costs=st.one_of(st.lists(st.floats(0, 1e6), max_size=30), st.lists(st.floats(allow_nan=True), max_size=4),
                       ANY), alpha=ALPHA)
def test_the_conformal_quantile_is_the_kth_cost_or_inf_or_names_the_argument(costs, alpha):
    try:
        qh = c3po.conformal_quantile(costs, alpha)
    except Exception as e:  # noqa: BLE001
        assert named(e, "alpha", "costs", "calibration"), repr(e)
    else:
        k = c3po.conformal_rank(len(costs), alpha)
        assert (qh == math.inf and k > len(costs)) or qh == sorted(costs)[k - 1]
        # the split-conformal rank: at least a (1 - alpha) share of the n + 1 points lie at or below it
        assert k >= (len(costs) + 1) * (1 - alpha) - 1e-6


@FAST
@given(n=st.one_of(st.integers(-3, 300), ANY.filter(lambda x: not isinstance(x, float) or not 1e4 < abs(x) < 1e300)),
       ss=st.one_of(st.integers(-1, 100), ANY),
       cal=st.one_of(st.integers(-1, 100), ANY), seed=st.one_of(st.integers(0, 5), ANY))
def test_random_split_partitions_the_queries_or_names_the_argument(n, ss, cal, seed):
    try:
        a, b, c = c3po.random_split(n, ss, cal, seed)
    except Exception as e:  # noqa: BLE001
        assert named(e, "n_queries", "n_ss", "n_cal", "seed"), repr(e)
    else:
        assert len(a) == ss and len(b) == cal and len(c) >= 1
        assert sorted(np.concatenate([a, b, c]).tolist()) == list(range(int(n)))


@FAST
@given(grid=st.one_of(st.lists(st.floats(-0.5, 1.5), max_size=4), st.lists(st.floats(allow_nan=True), max_size=3),
                      ANY), m=st.one_of(st.integers(-1, 4), ANY))
def test_configs_enumerate_the_grid_or_name_the_argument(grid, m):
    try:
        taus = c3po.configs(grid, m)
    except Exception as e:  # noqa: BLE001
        assert named(e, "grid", "n_models"), repr(e)
    else:
        assert taus.shape == (len(set(grid)) ** (m - 1) if len(set(grid)) == len(grid) else taus.shape[0], m)
        assert np.isfinite(taus).all() and (taus[:, -1] == 0).all()


@FAST
@given(ss=st.one_of(st.lists(st.integers(-Q - 2, Q + 2), max_size=20), ANY),
       cal=st.one_of(st.lists(st.integers(0, Q - 1), max_size=40, unique=True),
                     st.lists(st.integers(-Q - 2, Q + 2), max_size=25), ANY),
       budget=st.one_of(st.floats(0, 40), st.floats(allow_nan=True, allow_infinity=True), ANY), alpha=ALPHA,
       mode=st.sampled_from(["reuse", "split"]))
def test_fit_certifies_the_budget_or_refuses_naming_why(ss, cal, budget, alpha, mode):
    try:
        f = c3po.fit(TRACES, ss, cal, budget, alpha, mode=mode, ev=EV)
    except c3po.InfeasibleBudget as e:
        assert "budget" in str(e) or "calibration" in str(e)
    except Exception as e:  # noqa: BLE001
        assert named(e, "alpha", "budget", "D_ss", "D_cal", "calibration", "mode"), repr(e)
    else:
        assert f.q_hat <= budget and 0 < f.alpha < 1 and f.n_cal == len(cal)
        assert not set(np.asarray(ss) % Q) & set(np.asarray(cal) % Q)              # disjoint, as required
        assert c3po.conformal_quantile(c3po.cascade.cascade(TRACES, f.tau)["cost"][np.asarray(cal)], alpha) == \
            pytest.approx(f.q_hat)


@FAST
@given(tau=st.one_of(st.lists(st.floats(0, 1.1), min_size=0, max_size=4),
                     st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=2, max_size=2), ANY))
def test_one_cascade_run_costs_what_its_exits_pay_or_names_tau(tau):
    try:
        out = c3po.cascade.cascade(TRACES, tau)
    except Exception as e:  # noqa: BLE001
        assert named(e, "tau"), repr(e)
    else:
        assert out["cost"].shape == (Q,) and np.isfinite(out["cost"]).all()
        assert (out["cost"] >= TRACES.cost[0] - 1e-9).all()                       # the first model always runs


@pytest.mark.parametrize("bad", ["large", [], None, 3])
def test_task_traces_refuses_a_string_or_no_models_naming_models(bad):
    """Issue 23 item 8: a model-name string is not split into letters, an empty list fails before any work."""
    with pytest.raises((TypeError, ValueError), match="models"):
        c3po.task_traces(bad, [])
