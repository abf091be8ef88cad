"""PPO (stable-baselines3) on synthetic tables: it finds the dominant sequence (property 2), goes cheap when
cost dominates (property 3); saved policies round-trip without pickles; baselines agree with the env."""
from __future__ import annotations

import numpy as np
import pytest

from nblib import hierrouter as H
from nblib.hierrouter import baselines as B
from nblib.taskworld import problems as T

from nblib.hierrouter.synthetic import right_at, wrong_step

SMALL_PPO = {"n_steps": 128, "batch_size": 64, "n_epochs": 10, "learning_rate": 3e-3}


@pytest.fixture(scope="module")
def dominant():
    """M = 3, L = 2: only the sequence (a, b) is ever right; c is cheapest and never right."""
    probs = T.problems("train", 40, seed=5, n_steps=2)
    pool = [H.ScriptedStepModel("a", right_at({0}), 2.0), H.ScriptedStepModel("b", right_at({1}), 2.0),
            H.ScriptedStepModel("c", wrong_step, 1.0)]
    return probs, H.StepCache(pool, H.KindFeatures())


def greedy_sequences(router, probs, cache, lam):
    df = H.evaluate(router, probs, cache, lam, horizon=2, cost_unit=router.config["cost_unit_flops"])
    return df


def test_ppo_finds_the_dominant_sequence(dominant):
    probs, cache = dominant
    mat = B.sequence_matrix(cache, probs, 2)
    assert mat.quality[:, mat.sequences.index(("a", "b"))].all() and mat.quality.sum() == len(probs)
    router = H.train(probs, cache, lam=0.05, horizon=2, timesteps=6_000, seed=0, n_envs=4, ppo_kwargs=SMALL_PPO)
    df = greedy_sequences(router, probs, cache, 0.05)
    assert (df.models == ("a", "b")).all(), df.models.value_counts()
    assert df["return"].mean() == pytest.approx(B.oracle(mat, router.config["cost_unit_flops"], 0.05)["return"])
    assert router.curve and 5_000 <= router.curve[-1][0] <= 6_144  # logged up to the last full rollout


def test_a_large_cost_weight_makes_ppo_pick_the_cheapest_model(dominant):
    probs, cache = dominant
    router = H.train(probs, cache, lam=20.0, horizon=2, timesteps=4_000, seed=1, n_envs=4, ppo_kwargs=SMALL_PPO)
    df = greedy_sequences(router, probs, cache, 20.0)
    assert (df.models == ("c", "c")).all(), df.models.value_counts()


def test_saved_router_round_trips_through_safetensors_and_json(dominant, tmp_path):
    probs, cache = dominant
    router = H.train(probs, cache, lam=0.05, horizon=2, timesteps=256, seed=0, n_envs=2, ppo_kwargs=SMALL_PPO)
    w, c = router.save(tmp_path, "policy")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy.json", "policy.safetensors"]
    back = H.Router.load(w)
    obs = np.random.default_rng(0).normal(size=(16, router.config["obs_dim"])).astype(np.float32)
    np.testing.assert_allclose(back.probabilities(obs), router.probabilities(obs), rtol=1e-6)
    assert back.config == router.config and back.curve == H.agent.binned_curve(router.curve)
    bad = dict(router.config, obs_dim=router.config["obs_dim"] + 1)
    c.write_text(__import__("json").dumps(bad))
    with pytest.raises(ValueError, match="does not fit a policy with obs_dim"):
        H.Router.load(w)


def test_baselines_on_the_sequence_matrix(scripted_cache, problems3):
    mat = B.sequence_matrix(scripted_cache, problems3, 3)
    assert len(mat.sequences) == 27
    unit, lam = 100.0, 0.2
    rnd = B.random_routing(mat, unit, lam)
    assert rnd["accuracy"] == pytest.approx(mat.quality.mean()) and rnd["cost_flops"] == pytest.approx(mat.flops.mean())
    orc = B.oracle(mat, unit, lam)
    per_seq = mat.returns(lam, unit).mean(0)
    assert orc["return"] >= per_seq.max() - 1e-12
    assert B.best_fixed(mat, mat, unit, lam)["return"] == pytest.approx(per_seq.max())
    singles = {r["method"]: r for r in B.single_models(mat, unit)}
    assert singles["good only"]["accuracy"] == 1.0 and singles["bad only"]["accuracy"] == 0.0
    greedy = B.greedy_by_kind(scripted_cache, problems3, problems3, unit)
    assert greedy["accuracy"] == 1.0 and set(greedy["choice"].values()) <= {"good", "mid"}


def test_fixed_action_policy_reproduces_the_single_model_baseline(scripted_cache, problems3):
    mat = B.sequence_matrix(scripted_cache, problems3, 3)
    unit = H.reference_cost(scripted_cache, problems3, 3)
    rows = {r["method"]: r for r in B.single_models(mat, unit, lam=0.3)}
    for a, name in enumerate(scripted_cache.names):
        df = H.evaluate(H.FixedPolicy(a), problems3, scripted_cache, 0.3, 3, unit)
        assert df.quality.mean() == rows[f"{name} only"]["accuracy"]
        assert df.cost_flops.mean() == rows[f"{name} only"]["cost_flops"]
        assert df["return"].mean() == pytest.approx(rows[f"{name} only"]["return"])


def test_a_policy_refuses_a_pool_or_encoder_it_was_not_trained_on(dominant):
    """Issue 23: a policy trained on one pool ran silently on another."""
    probs, cache = dominant
    router = H.train(probs, cache, lam=0.05, horizon=2, timesteps=256, seed=0, n_envs=2, ppo_kwargs=SMALL_PPO)
    H.evaluate(router, probs[:4], cache, 0.05, horizon=2)                       # its own table: fine
    a, b, c = cache.pool
    with pytest.raises(H.PolicyMismatch, match=r"trained on the pool \['a', 'b', 'c'\].*\['b', 'a', 'c'\]"):
        H.evaluate(router, probs[:4], H.StepCache([b, a, c], H.KindFeatures()), 0.05, horizon=2)
    with pytest.raises(H.PolicyMismatch, match=r"\['a', 'b'\]"):
        H.evaluate(router, probs[:4], H.StepCache([a, b], H.KindFeatures()), 0.05, horizon=2)
    other_c = H.ScriptedStepModel("c", right_at({0, 1}), 1.0)                  # same name, other behaviour
    with pytest.raises(H.PolicyMismatch, match=r"\['c'\] have other weights"):
        H.evaluate(router, probs[:4], H.StepCache([a, b, other_c], H.KindFeatures()), 0.05, horizon=2)

    class OtherEncoder(H.KindFeatures):
        name = "hand:other"

    with pytest.raises(H.PolicyMismatch, match="reads the encoder 'hand:kind'"):
        H.evaluate(router, probs[:4], H.StepCache([a, b, c], OtherEncoder()), 0.05, horizon=2)
    with pytest.raises(H.PolicyMismatch, match="width"):
        H.evaluate(router, probs[:4], cache, 0.05, horizon=3)
