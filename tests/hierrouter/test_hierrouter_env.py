"""The environment's accounting (HierRouter property 1), the encoder's cost, and the clear errors."""
from __future__ import annotations

import numpy as np
import pytest

from nblib import hierrouter as H
from nblib.taskworld import problems as T


def run(env, actions, problem=0):
    obs, _ = env.reset(options={"problem": problem})
    ret, info, done = 0.0, {}, False
    for a in actions:
        if done:
            break
        obs, r, done, trunc, info = env.step(a)
        ret += r
    assert done and not trunc
    return ret, info


@pytest.mark.parametrize("actions", [(0, 0, 0), (0, 1, 0), (2, 0, 0), (1, 1, 1), (2, 2, 0), (0, 0, 2)])
def test_return_is_quality_minus_lambda_cost_on_scripted_episodes(scripted_cache, problems3, actions):
    lam, unit = 0.37, 1000.0
    env = H.RouteEnv(problems3, scripted_cache, lam=lam, cost_unit=unit)
    p = problems3[4]
    # by hand: the router reads the new tokens (2 FLOPs each), each call reads the whole context (chars + <bos>)
    # and writes its line (+ newline); the episode stops at the first wrong line
    ctx, flops, lines, new = p.text + "\n", 0.0, [], len(p.text) + 2
    fpt = {0: 10.0, 1: 1.0, 2: 3.0}
    for k, a in enumerate(actions):
        line = scripted_cache.pool[a].fn(ctx)
        flops += 2.0 * new + fpt[a] * ((len(ctx) + 1) + (len(line) + 1))
        lines.append(line)
        ctx += line + "\n"
        new = len(line) + 1
        if line != p.step_lines[k]:
            break
    q = float(len(lines) == 3 and T.step_result(lines[-1]) == p.answer)
    assert q == float(actions[1:] == (0, 0))  # right only when hops 1 and 2 are 'good' (hop 0: good or mid)
    ret, info = run(env, actions, problem=4)
    assert info["quality"] == q and info["lines"] == lines
    assert info["cost"] == pytest.approx(flops)
    assert ret == pytest.approx(q - lam * flops / unit)
    assert info["episode_return"] == pytest.approx(ret)


def test_the_encoder_cost_is_counted_in_the_ledger_the_cost_and_the_reward(scripted_cache, problems3):
    env = H.RouteEnv(problems3, scripted_cache, lam=1.0, cost_unit=100.0)
    ret, info = run(env, (0, 0, 0), problem=1)
    p = problems3[1]
    routers = [e for e in env.ledger.entries if e.extra["role"] == "router"]
    tokens = [len(p.text) + 2] + [len(line) + 1 for line in p.step_lines[:2]]
    assert [e.prompt_tokens for e in routers] == tokens and [e.extra["hop"] for e in routers] == [0, 1, 2]
    assert info["router_cost"] > 0 and info["router_cost"] == pytest.approx(2.0 * sum(tokens))
    assert info["cost"] == pytest.approx(info["pool_cost"] + info["router_cost"]) == H.episode_cost(env.ledger)
    assert ret == pytest.approx(1.0 - (info["pool_cost"] + info["router_cost"]) / 100.0)
    free = H.RouteEnv(problems3, scripted_cache.with_encoder(H.KindFeatures()), lam=1.0, cost_unit=100.0)
    _, info0 = run(free, (0, 0, 0), problem=1)
    assert info0["cost"] == pytest.approx(info["cost"] - info["router_cost"])


def test_episodes_of_mixed_length_take_their_own_number_of_hops(scripted_cache, mixed):
    env = H.RouteEnv(mixed, scripted_cache, lam=0.1, cost_unit=100.0)
    assert env.horizon == 5
    for i, p in enumerate(mixed):
        _, info = run(env, [0] * 5, problem=i)
        assert len(info["actions"]) == p.n_steps and info["quality"] == 1.0


def test_the_batched_walk_equals_the_environment(scripted_cache, mixed, rng):
    A = H.arrays(scripted_cache, mixed)
    env = H.RouteEnv(mixed, scripted_cache, lam=0.2, cost_unit=50.0)
    acts = rng.integers(0, 3, size=(len(mixed), A.horizon))
    acts[::2] = 0
    w = H.episodes.fixed(A, acts, reads_context=True)
    for i in range(len(mixed)):
        _, info = run(env, acts[i], problem=i)
        assert w.quality[i] == info["quality"] and w.hops[i] == len(info["actions"])
        assert w.flops[i] == pytest.approx(info["cost"]) and w.router_flops[i] == pytest.approx(info["router_cost"])


def test_observation_has_the_view_the_hop_the_hops_left_and_the_cost_spent(scripted_cache, problems3):
    env = H.RouteEnv(problems3, scripted_cache, lam=0.1, cost_unit=100.0)
    obs, _ = env.reset(options={"problem": 0})
    assert obs.shape == env.observation_space.shape == (4 + 3,)
    assert list(obs[4:]) == [0, 3, 0]
    assert obs[:4].argmax() == T.OPS.index(problems3[0].kinds[0])
    obs, *_ = env.step(0)
    assert list(obs[4:6]) == [1, 2] and obs[-1] > 0 and obs[-1] == pytest.approx(env.spent / 100.0)


# ----------------------------------------------------------------------------- clear errors
def test_an_unknown_pool_model_is_one_clear_error():
    with pytest.raises(H.UnknownPoolModel, match=r"unknown model 'gpt-9' in the pool; the task models are \["):
        H.make_pool(["v2-tiny", "gpt-9"])
    with pytest.raises(H.UnknownPoolModel, match="unknown model 'tiny'"):  # the old ladder is not offered
        H.make_pool(["tiny"])
    assert issubclass(H.UnknownPoolModel, ValueError)


@pytest.mark.parametrize("lam", [-0.1, -1, float("nan"), "a lot", True])
def test_a_negative_lambda_is_one_clear_error(scripted_cache, problems3, lam):
    with pytest.raises(ValueError, match="lam .the cost weight. must be a"):
        H.RouteEnv(problems3, scripted_cache, lam=lam, cost_unit=1.0)


def test_a_horizon_longer_than_any_problem_is_one_clear_error(scripted_cache, mixed):
    with pytest.raises(ValueError, match=r"horizon 9 is longer than any problem \(the longest has 5 steps\)"):
        H.RouteEnv(mixed, scripted_cache, lam=0.1, horizon=9, cost_unit=1.0)
    with pytest.raises(ValueError, match="horizon 3 is shorter than a 5-step problem"):
        H.RouteEnv(mixed, scripted_cache, lam=0.1, horizon=3, cost_unit=1.0)


@pytest.mark.parametrize("horizon", [0, -2, 1.5, True])
def test_a_horizon_below_one_is_a_clear_error(scripted_cache, problems3, horizon):
    with pytest.raises(ValueError, match="horizon must be a whole number of hops >= 1"):
        H.RouteEnv(problems3, scripted_cache, lam=0.1, horizon=horizon, cost_unit=1.0)


def test_step_after_the_end_and_bad_actions_are_refused(scripted_cache, problems3):
    env = H.RouteEnv(problems3, scripted_cache, lam=0.1, cost_unit=1.0)
    env.reset(options={"problem": 0})
    with pytest.raises(ValueError, match="not a pool index 0..2"):
        env.step(7)
    run(env, (1,))  # 'bad' is wrong at once: the episode ends
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(0)
