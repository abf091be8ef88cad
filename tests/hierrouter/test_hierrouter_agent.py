"""The PPO router: it learns on a scripted pool, saves without pickles, and the committed policies reproduce their
committed evaluation; the oracle is at least as good as every policy on every problem."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from nblib import hierrouter as H
from nblib.taskworld import problems as T

SMALL_PPO = {"n_steps": 64, "batch_size": 64, "n_epochs": 4}


@pytest.fixture(scope="module")
def dominant():
    """A pool whose cheapest right route is known: 'cheap' is right at hops 0 and 2, 'dear' always, 'bad' never."""
    from nblib.hierrouter.synthetic import right_at, right_step, wrong_step

    probs = T.problems("train", 16, seed=4, n_steps=3)
    pool = [H.ScriptedStepModel("cheap", right_at({0, 2}), 1.0), H.ScriptedStepModel("bad", wrong_step, 0.5),
            H.ScriptedStepModel("dear", right_step, 20.0)]
    cache = H.StepCache(pool, H.KindFeatures())
    return probs, cache


def test_ppo_learns_when_to_call_the_dear_model(dominant):
    probs, cache = dominant
    A = H.arrays(cache, probs)
    unit = H.reference_cost(cache, probs)
    r = H.train(probs, cache, 0.3, 6_000, seed=0, cost_unit=unit, features=H.Features(raw_dim=4),
                ppo_kwargs=SMALL_PPO)
    w = H.agent.run(r, A, unit)
    assert w.quality.mean() == 1.0
    assert (w.actions[:, 1] == 2).all() and (w.actions[:, 0] == 0).mean() >= 0.9  # dear only where cheap fails


def test_a_router_round_trips_through_safetensors_and_json_without_pickle(dominant, tmp_path, monkeypatch):
    probs, cache = dominant
    A = H.arrays(cache, probs)
    r = H.train(probs, cache, 0.1, 512, seed=1, cost_unit=100.0, features=H.Features.fit(A.view[:, 0], 2),
                ppo_kwargs=SMALL_PPO)
    w, c = r.save(tmp_path, "p")
    assert json.loads(c.read_text())["lam"] == 0.1
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("a pickle was read"))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("a pickle was read"))
    back = H.Router.load(w)
    raw = np.concatenate([A.view[:, 0], np.zeros((len(probs), 1)), A.n_steps[:, None], np.zeros((len(probs), 1))], 1)
    assert np.allclose(back.probabilities(raw), r.probabilities(raw), atol=1e-6)
    assert np.allclose(back.obs_mean, r.obs_mean) and back.features.dim == r.features.dim == 5


def test_a_policy_refuses_a_pool_it_was_not_trained_on(dominant, tmp_path):
    probs, cache = dominant
    r = H.train(probs, cache, 0.1, 128, seed=0, cost_unit=100.0, features=H.Features(raw_dim=4),
                ppo_kwargs=SMALL_PPO)
    other = H.StepCache(list(reversed(cache.pool)), H.KindFeatures())
    with pytest.raises(H.PolicyMismatch, match="trained on the pool"):
        r.check_fits(other)


# ----------------------------------------------------------------------------- the committed policies
COMMITTED = H.bench.DATA_DIR / "results.json"


@pytest.fixture(scope="module")
def committed():
    res = json.loads(COMMITTED.read_text())
    reg = res["regression"]
    test, cache = H.step_table("test", reg["test_n"])   # the first problems of the committed held-out split
    return res, reg, test, cache, H.arrays(cache, test)


def test_committed_policies_load_without_pickle_and_reproduce_their_evaluation(committed, monkeypatch):
    """Regression values: data/hierrouter/results.json['regression'], written by scripts/hierrouter_train.py."""
    res, reg, test, cache, A = committed
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("a pickle was read"))
    for key, want in reg["policies"].items():
        r = H.Router.load(H.bench.DATA_DIR / f"{key}.safetensors")
        r.check_fits(cache)
        w = H.agent.run(r, A, res["cost_unit_flops"])
        assert w.actions.tolist() == want["actions"], key
        assert w.quality.mean() == pytest.approx(want["accuracy"]) and w.flops.mean() == pytest.approx(want["flops"])


def test_the_oracle_is_at_least_as_good_as_every_policy_on_every_problem(committed):
    res, reg, test, cache, A = committed
    unit = res["cost_unit_flops"]
    for key in reg["policies"]:
        r = H.Router.load(H.bench.DATA_DIR / f"{key}.safetensors")
        w = H.agent.run(r, A, unit)
        _, o = H.baselines.oracle(A, unit, r.lam)
        assert (o.quality - r.lam * o.flops / unit >= w.quality - r.lam * w.flops / unit - 1e-12).all(), key
        _, o0 = H.baselines.oracle(A, unit, 0.0)
        assert (o0.quality >= w.quality).all(), key
