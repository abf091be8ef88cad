"""The lambda panel and the benchmark summary, on a scripted pool (no model weights)."""
from __future__ import annotations

import numpy as np
import pytest

from nblib import hierrouter as H

SMALL_PPO = {"n_steps": 64, "batch_size": 64, "n_epochs": 2}


@pytest.fixture(scope="module")
def compared():
    from nblib.taskworld import problems as T

    from nblib.hierrouter.synthetic import right_at, right_step, wrong_step

    probs = T.problems("train", 10, seed=3, n_steps=3)
    pool = [H.ScriptedStepModel("spec-good", right_step, 10.0), H.ScriptedStepModel("spec-bad", wrong_step, 1.0),
            H.ScriptedStepModel("large", right_at({0, 1, 2}), 100.0)]
    cache = H.StepCache(pool, H.KindFeatures())
    routers = {lam: H.train(probs, cache, lam, 3, 128, seed=0, n_envs=2, ppo_kwargs=SMALL_PPO) for lam in (0.1, 2.0)}
    rows, evals = H.bench.compare(routers, probs, cache, probs, cache, 3)
    return rows, evals, cache


def test_panel_state_follows_the_lambda_slider(compared):
    rows, evals, cache = compared
    panel = H.RouterPanel(rows, evals, cache.names, 3)
    a, b = panel.state(lam=0.1), panel.state(lam=2.0)
    want = {r["lam"]: r for r in rows if r["method"] == "HierRouter (PPO)"}
    assert (a["accuracy"], a["cost"]) == (want[0.1]["accuracy"], want[0.1]["cost"])
    assert (b["accuracy"], b["cost"]) == (want[2.0]["accuracy"], want[2.0]["cost"])
    assert a["heat"].shape == (3, 9)
    cols = ~np.isnan(a["heat"]).all(0)
    assert np.allclose(np.nansum(a["heat"], 0)[cols], 1.0)  # each (hop, kind) column: shares of the models
    png = panel.image.value
    panel.set(lam=2.0)
    assert panel.label.value.startswith("λ 2 ·") and panel.redraws == 2 and panel.image.value != png
    assert panel.last_update_ms < 1000
    with pytest.raises(TypeError, match="unknown slider"):
        panel.state(beta=1)


def test_summary_keys_and_goals(compared):
    rows, _, _ = compared
    s = H.bench.summary(rows)
    for key in ("policy_accuracy", "policy_cost", "best_single_specialist_accuracy", "best_single_specialist_cost",
                "large_only_accuracy", "large_only_cost", "oracle_accuracy", "frontier_dominates_random"):
        assert key in s
    assert s["best_single_specialist"] == "spec-good" and s["best_single_specialist_accuracy"] == 1.0
    assert s["large_only_cost"] == pytest.approx(1.0, rel=0.05) and s["oracle_accuracy"] == 1.0
    assert isinstance(s["frontier_dominates_random"], bool)


def test_dominates():
    assert H.bench.dominates([(0.1, 0.9), (1.0, 1.0)], [(0.5, 0.8), (1.0, 1.0)])
    assert not H.bench.dominates([(0.1, 0.5)], [(0.5, 0.8)])


def test_episode_table_shows_each_hop(compared):
    rows, evals, cache = compared
    from nblib.taskworld import problems as T

    probs = T.problems("train", 10, seed=3, n_steps=3)
    env = H.RouteEnv(probs, cache, 0.1, 3, cost_unit=1000.0)
    df = H.panel.episode_table(env, H.FixedPolicy(0), problem=2)
    assert list(df["hop"]) == [1, 2, 3] and df["right"].all() and df.attrs["quality"] == 1.0
    assert df["spent MFLOPs"].iloc[-1] == pytest.approx(df["call MFLOPs"].sum())
