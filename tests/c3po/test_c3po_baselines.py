"""Baselines: single models / SC, the fixed vote cascade's endpoints, the labelled FrugalGPT-style cascade; the comparison."""
from __future__ import annotations

import numpy as np

from nblib import c3po
from nblib.c3po import baselines as BL
from nblib.c3po import bench


def test_single_models_are_each_models_own_majority(traces):
    rows = {r["method"]: r for r in BL.single_models(traces)}
    assert rows["strong self-consistency@5"]["accuracy"] == (traces.answer[2] == traces.gold).mean()
    assert rows["cheap SC@5"]["mean_cost"] == traces.cost[0].mean()


def test_fixed_vote_endpoints(traces):
    assert BL.fixed_vote(traces, 0.0)["accuracy"] == (traces.answer[0] == traces.gold).mean()
    top = BL.fixed_vote(traces, 1.1)
    assert top["accuracy"] == (traces.mpm == traces.gold).mean()
    assert np.isclose(top["mean_cost"], traces.cost[2].mean())


def test_frugal_uses_labels_and_traces_a_frontier(traces):
    ss, cal, test = c3po.random_split(traces.n_queries, 100, 100, seed=0)
    train = np.concatenate([ss, cal])
    f = BL.fit_frugal(traces, train)
    cheap = f.run(traces, f.pick(traces.cost[0].mean() * 1.01), test)
    rich = f.run(traces, f.pick(np.inf), test)
    assert cheap["mean_cost"] < rich["mean_cost"] and cheap["accuracy"] < rich["accuracy"]
    fr = BL.frugal_frontier(traces, train, test, frugal=f)
    assert BL.accuracy_at_cost(fr, fr[-1]["mean_cost"]) >= BL.accuracy_at_cost(fr, fr[0]["mean_cost"])
    # the scorer learnt something: a correct answer scores higher than a wrong one, on held-out queries
    sc = f.scores(traces)[0, test]
    right = traces.correct()[0, test]
    assert sc[right].mean() > sc[~right].mean()


def test_compare_has_every_method_at_every_budget(traces):
    budgets = bench.default_budgets(traces, 3)
    rows = bench.compare(traces, budgets, n_splits=50, n_frugal=5)
    methods = {r["method"] for r in rows}
    assert {"C3PO (reuse)", "C3PO (split)", "FrugalGPT-style (labels, matched mean cost)",
            "vote cascade (fixed tau = 0.8)", "strong self-consistency@5"} <= methods
    assert len(rows) == 3 * len(methods)
    for r in rows:
        if r["kind"].startswith("c3po"):
            assert r["p_cost_over_budget"] <= r["bound"]
    df = bench.table(rows, unit_scale=1.0, unit="FLOPs")
    assert "P(cost > B)" in df.columns
