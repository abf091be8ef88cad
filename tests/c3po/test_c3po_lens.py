"""C3PO against greedy MPM and the price lens on synthetic traces (no model needed)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from nblib import c3po, cost


def priced(traces, per_token=(1.0, 5.0, 14.0), seed=0):
    """The synthetic traces with prompt/greedy token counts and costs that are exactly per-token prices."""
    rng = np.random.default_rng(seed)
    q = traces.n_queries
    prompt = rng.integers(8, 20, q)
    gtok = np.stack([rng.integers(10, 40, q) for _ in traces.models])
    greedy = np.where(rng.random((len(traces.models), q)) < np.array([[0.4], [0.75], [0.95]]),
                      traces.gold[None], -1)
    p = np.asarray(per_token)[:, None]
    return replace(traces, prompt_tokens=prompt, greedy_tokens=gtok, greedy=greedy,
                   cost=p * (traces.k * prompt[None] + traces.tokens), greedy_cost=p * (prompt[None] + gtok))


def test_repricing_under_the_ladder_own_sheet_gives_back_its_costs(traces):
    tr = priced(traces)
    sheet = c3po.lens.ladder_sheet(tr)
    assert [sheet.price(m)[1] for m in tr.models] == pytest.approx([1.0, 5.0, 14.0])
    again = c3po.lens.repriced(tr, sheet)
    np.testing.assert_allclose(again.cost, tr.cost)
    np.testing.assert_allclose(again.greedy_cost, tr.greedy_cost)
    doubled = c3po.lens.repriced(tr, cost.scaled_sheet(sheet, 14.0 ** 2))   # log-prices doubled
    np.testing.assert_allclose(doubled.greedy_cost[2], 196.0 * (tr.prompt_tokens + tr.greedy_tokens[2]))


def test_versus_greedy_compares_on_the_same_test_queries(traces):
    tr = priced(traces)
    rows = c3po.lens.versus_greedy(tr, 0.1, n_splits=50)
    assert rows, "no feasible budget"
    _, _, test = c3po.guarantee.splits(tr.n_queries, 50, 50, 50, 0)
    g = (tr.greedy[-1] == tr.gold)[test].mean()
    assert all(r["greedy_accuracy"] == pytest.approx(g) for r in rows)
    for r in rows:
        assert r["cost_ratio"] == pytest.approx(r["c3po_mean_cost"] / r["greedy_mean_cost"])
        assert r["beats_greedy"] == c3po.lens.beats(r["accuracy_diff"], r["cost_ratio"])


def test_beats_and_best_point_follow_the_goal():
    assert c3po.lens.beats(-0.009, 0.69) and not c3po.lens.beats(-0.011, 0.5)
    assert not c3po.lens.beats(0.0, 0.71) and c3po.lens.beats(0.02, 1.0) and not c3po.lens.beats(0.02, 1.01)
    rows = [{"accuracy_diff": -0.05, "cost_ratio": 0.2}, {"accuracy_diff": -0.005, "cost_ratio": 0.9},
            {"accuracy_diff": 0.01, "cost_ratio": 1.5}]
    assert c3po.lens.best_point(rows)["cost_ratio"] == 0.9
    assert c3po.lens.best_point(rows[:1])["cost_ratio"] == 0.2 and c3po.lens.best_point([]) is None


def test_first_paying_ratio_needs_every_larger_ratio_to_pay():
    curve = [{"ratio": 10, "beats_greedy": False}, {"ratio": 100, "beats_greedy": True},
             {"ratio": 300, "beats_greedy": False}, {"ratio": 1000, "beats_greedy": True},
             {"ratio": 3000, "beats_greedy": True}]
    assert c3po.lens.first_paying_ratio(curve) == 1000
    assert c3po.lens.first_paying_ratio(curve[:3]) is None


def test_break_even_reprices_at_every_ratio(traces):
    tr = priced(traces)
    curve = c3po.lens.break_even(tr, [1.0, 14.0, 1e4], n_splits=30)
    assert [r["ratio"] for r in curve] == [1.0, 14.0, 1e4]
    assert not curve[0]["beats_greedy"]   # equal prices: K samples on the way never cost less than 1 greedy answer


def test_repricing_needs_token_counts(traces):
    with pytest.raises(ValueError, match="no prompt token counts"):
        c3po.lens.repriced(traces, cost.flops_sheet({"cheap": 1.0, "mid": 2.0, "strong": 3.0}))


def test_greedy_last_swaps_in_the_mpm_greedy_answer_and_cost(traces):
    tr = priced(traces)
    g = c3po.lens.greedy_last(tr)
    np.testing.assert_array_equal(g.answer[-1], tr.greedy[-1])
    np.testing.assert_array_equal(g.cost[-1], tr.greedy_cost[-1])
    np.testing.assert_array_equal(g.answer[:-1], tr.answer[:-1])        # earlier rungs still vote with K samples
    np.testing.assert_array_equal(g.cost[:-1], tr.cost[:-1])
    assert g.last_greedy and not tr.last_greedy
    # re-pricing a greedy last rung reads the prompt once, not K times
    again = c3po.lens.repriced(g, c3po.lens.ladder_sheet(tr))
    np.testing.assert_allclose(again.cost[-1], tr.greedy_cost[-1])
    # the always-on cascade (every query to the MPM) now costs greedy MPM's answer plus the earlier rungs' votes
    out = c3po.cascade.cascade(g, (1.1, 1.1, 0.0))
    np.testing.assert_allclose(out["cost"], tr.greedy_cost[-1])
    assert (out["answer"] == tr.greedy[-1]).all()


def test_fit_refuses_splits_that_void_the_guarantee(traces):
    ss, cal, _ = c3po.random_split(traces.n_queries, 50, 50)
    budget = float(np.quantile(traces.cost.sum(0), 0.95))
    with pytest.raises(ValueError, match="shares 50 queries with D_ss"):
        c3po.fit(traces, ss, ss, budget, 0.1)
    with pytest.raises(ValueError, match="repeats queries"):
        c3po.fit(traces, ss, [cal[0]] * 19, budget, 0.1)
    with pytest.raises(ValueError, match="query indices"):
        c3po.fit(traces, ss, [traces.n_queries + 5], budget, 0.1)
    assert c3po.fit(traces, ss, cal, budget, 0.1).n_cal == 50


def test_task_traces_refuses_a_string_and_models_not_in_cost_order():
    with pytest.raises(TypeError, match="not the string 'v2-large'"):
        c3po.task_traces("v2-large", "test", 5)
    with pytest.raises(ValueError, match="cheapest first"):
        c3po.task_traces(("v2-large", "v2-mid", "v2-tiny"), "test", 5, verbose=False)
