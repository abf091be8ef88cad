"""The environment's accounting (HierRouter property 1) and its clear errors."""
from __future__ import annotations

import numpy as np
import pytest

from nblib import hierrouter as H
from nblib.taskworld import problems as T


def run(env, actions, problem=0):
    obs, _ = env.reset(options={"problem": problem})
    ret, info = 0.0, {}
    for a in actions:
        obs, r, done, trunc, info = env.step(a)
        ret += r
    assert done and not trunc
    return ret, info


@pytest.mark.parametrize("actions", [(0, 0, 0), (0, 1, 0), (2, 0, 0), (1, 1, 1), (2, 2, 0)])
def test_return_is_quality_minus_lambda_cost_on_hand_made_episodes(scripted_cache, problems3, actions):
    lam, unit = 0.37, 1000.0
    env = H.RouteEnv(problems3, scripted_cache, lam=lam, horizon=3, cost_unit=unit)
    p = problems3[4]
    # by hand: each call reads the whole context (chars + <bos>) and writes its line (+ newline)
    ctx, flops, lines = p.text + "\n", 0.0, []
    fpt = {0: 10.0, 1: 1.0, 2: 3.0}
    for a in actions:
        line = scripted_cache.pool[a].fn(ctx)
        flops += fpt[a] * ((len(ctx) + 1) + (len(line) + 1))
        lines.append(line)
        ctx += line + "\n"
    q = float(T.step_result(lines[-1]) == p.answer)
    assert q == float(actions[1:] == (0, 0))  # right only when hops 1 and 2 are 'good' (hop 0: good or mid)
    ret, info = run(env, actions, problem=4)
    assert info["quality"] == q and info["lines"] == lines
    assert info["cost"] == pytest.approx(flops)
    assert ret == pytest.approx(q - lam * flops / unit)
    assert info["episode_return"] == pytest.approx(ret)
    assert env.context == ctx  # c_{t+1} extends c_t by exactly the line written


def test_episode_cost_is_the_sum_of_its_ledger_calls(scripted_cache, problems3):
    env = H.RouteEnv(problems3, scripted_cache, lam=0.1, horizon=3, cost_unit=500.0)
    rng = np.random.default_rng(0)
    for i in range(len(problems3)):
        _, info = run(env, rng.integers(0, 3, size=3), problem=i)
        steps = [e for e in env.ledger.entries if e.extra["role"] == "step"]
        assert len(steps) == 3 and [e.extra["hop"] for e in steps] == [0, 1, 2]
        assert [e.name for e in steps] == info["actions"]
        assert info["cost"] == pytest.approx(sum(e.flops for e in steps)) == pytest.approx(H.episode_cost(env.ledger))
        for e, m in zip(steps, info["actions"], strict=True):
            fpt = scripted_cache.models[m].flops_per_token
            assert e.flops == fpt * (e.prompt_tokens + e.completion_tokens) and e.calls == 1


def test_observation_has_the_hop_and_the_cost_spent(scripted_cache, problems3):
    env = H.RouteEnv(problems3, scripted_cache, lam=0.1, horizon=3, cost_unit=100.0)
    obs, _ = env.reset(options={"problem": 0})
    assert obs.shape == env.observation_space.shape == (4 + 3 + 1,)
    assert list(obs[4:7]) == [1, 0, 0] and obs[-1] == 0
    assert obs[:4].argmax() == T.OPS.index(problems3[0].kinds[0])  # KindFeatures: the next step's kind
    obs, *_ = env.step(0)
    assert list(obs[4:7]) == [0, 1, 0] and obs[-1] == pytest.approx(env.spent / 100.0) and obs[-1] > 0


def test_models_run_once_per_context(scripted_cache, problems3):
    env = H.RouteEnv(problems3, scripted_cache, lam=0.1, horizon=3, cost_unit=100.0)
    for _ in range(3):
        run(env, (0, 0, 0), problem=1)
    assert scripted_cache.misses == 3 and scripted_cache.hits == 6


def test_sequence_cost_walks_the_same_table(scripted_cache, problems3):
    env = H.RouteEnv(problems3, scripted_cache, lam=0.0, horizon=3, cost_unit=1.0)
    for actions in [(0, 1, 2), (2, 0, 0)]:
        _, info = run(env, actions, problem=2)
        q, c, lines = H.sequence_cost(scripted_cache, problems3[2], [env.names[a] for a in actions])
        assert (q, c, lines) == (info["quality"], info["cost"], info["lines"])


# ----------------------------------------------------------------------------- clear errors
def test_unknown_model_in_the_pool_is_one_clear_error():
    with pytest.raises(H.UnknownPoolModel, match=r"unknown model 'gpt-9' in the pool; the task models are \["):
        H.make_pool(["tiny", "gpt-9"])
    assert issubclass(H.UnknownPoolModel, ValueError)


@pytest.mark.parametrize("lam", [-0.1, -1, float("nan"), "a lot"])
def test_negative_lambda_is_a_clear_error(scripted_cache, problems3, lam):
    with pytest.raises(ValueError, match="lam .the cost weight. must be a"):
        H.RouteEnv(problems3, scripted_cache, lam=lam, horizon=3, cost_unit=1.0)


@pytest.mark.parametrize("horizon", [0, -2, 1.5, True])
def test_horizon_zero_is_a_clear_error(scripted_cache, problems3, horizon):
    with pytest.raises(ValueError, match="horizon must be a whole number of hops >= 1"):
        H.RouteEnv(problems3, scripted_cache, lam=0.1, horizon=horizon, cost_unit=1.0)
    with pytest.raises(ValueError, match="horizon must be a whole number of hops >= 1"):
        H.step_table("train", 5, horizon=0)


def test_problems_of_another_length_are_refused(scripted_cache):
    with pytest.raises(ValueError, match=r"do not have horizon=3 steps .* n_steps=3"):
        H.RouteEnv(T.problems("train", 4, n_steps=2), scripted_cache, lam=0.1, horizon=3, cost_unit=1.0)


def test_step_after_the_end_and_bad_actions_are_refused(scripted_cache, problems3):
    env = H.RouteEnv(problems3, scripted_cache, lam=0.1, horizon=3, cost_unit=1.0)
    env.reset(options={"problem": 0})
    with pytest.raises(ValueError, match="not a pool index 0..2"):
        env.step(7)
    run(env, (0, 0, 0))
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(0)
