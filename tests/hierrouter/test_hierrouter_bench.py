"""The side-by-side comparison, its summary (the benchmark's keys), the price lens and the lambda panel, on a
scripted pool (no model weights)."""
from __future__ import annotations

import numpy as np
import pytest

from nblib import hierrouter as H
from nblib.hierrouter.synthetic import right_at, right_step, wrong_step
from nblib.taskworld import problems as T

SMALL_PPO = {"n_steps": 64, "batch_size": 64, "n_epochs": 2}


class PricedKinds(H.KindFeatures):
    """The hand features with a price (2 FLOPs per token read), so the router's encoder has a cost."""

    name = "hand:kind:priced"
    flops_per_token = 2.0


@pytest.fixture(scope="module")
def compared():
    probs = [p for n in (2, 3, 4) for p in T.problems("train", 6, seed=8, n_steps=n)]
    pool = [H.ScriptedStepModel("v2-tiny", right_at({0}), 1.0), H.ScriptedStepModel("v2-mid", wrong_step, 3.0),
            H.ScriptedStepModel("v2-large", right_step, 30.0)]
    cache = H.StepCache(pool, PricedKinds())
    A = H.arrays(cache, probs)
    unit = H.reference_cost(cache, probs)
    feats = H.Features(raw_dim=4)
    routers = {lam: [H.train(probs, cache, lam, 256, s, cost_unit=unit, features=feats, ppo_kwargs=SMALL_PPO)
                     for s in (0, 1)] for lam in (0.0, 1.0)}
    rows, walks = H.bench.compare(routers, A, A, unit)
    return rows, walks, A, unit


def test_summary_has_the_benchmark_keys_and_goal_verdicts(compared):
    rows, _, _, _ = compared
    s = H.bench.summary(rows)
    for key in ("area_over_mixing_line", "best_within_5pts_of_large_cost_share", "oracle_gap_at_that_cost", "seeds",
                "per_lam", "goal_above_mixing_line_every_lam", "goal_above_random_every_lam",
                "goal_within_5pts_of_large_at_half_cost", "goal_at_least_logistic", "baselines"):
        assert key in s
    assert s["seeds"] == 2 and len(s["per_lam"]) == 2
    assert s["large_only_accuracy"] == 1.0 and s["tiny_only_accuracy"] == 0.0
    methods = {b["method"] for b in s["baselines"]}
    assert {"greedy by step kind", "best fixed sequence", "logistic router (non-RL)", "oracle"} <= methods


def test_the_oracle_is_at_least_every_router_on_every_problem(compared):
    rows, walks, A, unit = compared
    for lam, ws in walks["routers"].items():
        _, o = H.baselines.oracle(A, unit, lam)
        for w in ws:
            assert (o.quality - lam * o.flops / unit >= w.quality - lam * w.flops / unit - 1e-12).all()


def test_area_over_the_mixing_line():
    line = lambda c: c  # noqa: E731
    assert H.bench.area_between((np.array([0.0, 1.0]), np.array([0.5, 1.5])), line, 0.0, 1.0) == pytest.approx(0.5)
    assert H.bench.area_between((np.array([0.0, 1.0]), np.array([0.0, 1.0])), line, 0.2, 0.2) == 0.0


def test_the_price_lens_reprices_the_same_episodes(compared):
    rows, walks, A, unit = compared
    ws = {f"{m} only": w for m, w in walks["singles"].items()} | {"router": walks["routers"][0.0][0]}
    lens = H.bench.price_lens(A, ws, H.bench.pool_sheet("as-if", A.names))
    assert lens["v2-large only"] == pytest.approx(1.0)
    assert lens["v2-tiny only"] < lens["v2-mid only"] < 1.0


def test_panel_state_follows_the_lambda_slider(compared):
    rows, walks, A, _ = compared
    panel = H.RouterPanel(rows, {lam: ws[0] for lam, ws in walks["routers"].items()}, A)
    a, b = panel.state(lam=0.0), panel.state(lam=1.0)
    want = {r["lam"]: r for r in rows if r["method"] == f"{H.bench.ROUTER}, mean of seeds"}
    assert (a["accuracy"], a["cost"]) == (want[0.0]["accuracy"], want[0.0]["cost"])
    assert (b["accuracy"], b["cost"]) == (want[1.0]["accuracy"], want[1.0]["cost"])
    cols = ~np.isnan(a["heat"]).all(0)
    assert np.allclose(np.nansum(a["heat"], 0)[cols], 1.0)  # each (hop, kind) column: shares of the models
    png = panel.image.value
    panel.set(lam=1.0)
    assert panel.label.value.startswith("λ 1 ·") and panel.image.value != png
    assert panel.last_update_ms < 1000
    with pytest.raises(TypeError, match="unknown slider"):
        panel.state(beta=1)


def test_episode_table_shows_each_hop(compared):
    _, _, A, unit = compared
    pool = [H.ScriptedStepModel("good", right_step, 10.0)]
    cache = H.StepCache(pool, PricedKinds())
    env = H.RouteEnv(A.problems, cache, 0.1, cost_unit=unit)
    df = H.panel.episode_table(env, lambda obs: 0, problem=2)
    assert list(df["hop"]) == list(range(1, A.problems[2].n_steps + 1)) and df["right"].all()
    assert df.attrs["quality"] == 1.0
    assert df["spent MFLOPs"].iloc[-1] == pytest.approx(df["call MFLOPs"].sum() + df["router MFLOPs"].sum())
