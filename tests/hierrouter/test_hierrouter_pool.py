"""The real v2 pool: task models step hop by hop exactly as they solve in one go; each model alone on the arrays
equals the environment; cost per call; the encoder; the step table is keyed by the pool's weights."""
from __future__ import annotations

import numpy as np
import pytest

from nblib import hierrouter as H
from nblib import taskworld
from nblib.taskworld import problems as T


@pytest.fixture(scope="module")
def real():
    probs = T.problems("test", 16, seed=7, cfg=T.V2_MIX)
    cache = H.StepCache(H.make_pool(["v2-tiny", "v2-spec-mul", "v2-large"]), H.make_encoder("hidden:v2-tiny"))
    return probs, cache.expand(probs)


def test_hop_by_hop_lines_equal_the_models_own_greedy_solution(real):
    probs, cache = real
    for name in ("v2-tiny", "v2-large"):
        sols = taskworld.solve(taskworld.load_model(name), probs)
        for p, g in zip(probs, sols, strict=True):
            steps, _ = T.parse_solution(g.text)
            lines = H.sequence_cost(cache, p, [name] * p.n_steps)[2]
            assert lines == steps[:len(lines)], (name, p.text)   # the same lines up to the first wrong one


def test_each_model_alone_on_the_arrays_equals_the_environment(real):
    probs, cache = real
    A = H.arrays(cache, probs)
    unit = H.reference_cost(cache, probs)
    misses = cache.misses
    for a, name in enumerate(cache.names):
        w = H.episodes.fixed(A, np.full(A.horizon, a))
        env = H.RouteEnv(probs, cache.with_encoder(H.KindFeatures()), 0.5, cost_unit=unit)
        for i in range(len(probs)):
            env.reset(options={"problem": i})
            done = False
            while not done:
                _, _, done, _, info = env.step(a)
            assert (info["quality"], info["cost"]) == (w.quality[i], pytest.approx(w.flops[i]))
    assert cache.misses == misses  # the expanded table already held every context


def test_cost_per_call_is_flops_per_token_times_tokens_read_and_written(real):
    probs, cache = real
    large = cache.models["v2-large"]
    assert large.flops_per_token / cache.models["v2-tiny"].flops_per_token == pytest.approx(31.6, abs=0.5)
    out = cache.step(H.steps.prompt(probs[0]), "v2-large")
    assert out.tokens_in == len(probs[0].text) + 2  # <bos>, the problem line, the newline
    assert out.tokens_out == len(out.line) + 1      # the line and its newline
    assert cache.cost("v2-large", out) == large.flops_per_token * (out.tokens_in + out.tokens_out)


def test_hidden_state_encoder_reads_the_next_step_and_the_context_end():
    enc = H.make_encoder("hidden:v2-tiny")
    p = T.problems("test", 1, seed=1, n_steps=3)[0]
    a = enc.encode([p.text + "\n"])[0]
    b = enc.encode([p.text + "\n" + p.step_lines[0] + "\n"])[0]
    d = enc.d
    assert a.shape == (2 * d,) and enc.flops_per_token > 0
    assert abs(a[:d] - b[:d]).max() > 1e-3          # another step is due next: another operator's state
    assert abs(a[d:] - b[d:]).max() > 1e-3          # and the context's end moved
    assert H.encoders.next_op_position(p.text + "\n") == p.text.index(p.text.split(",")[1][0], 1)
    with pytest.raises(ValueError, match="unknown encoder"):
        H.make_encoder("bert")


def test_the_cached_step_table_follows_the_pool_weights_not_the_names(tmp_path, monkeypatch):
    """Issue 23: a retrained pool model under the same name gets a new step table."""
    from nblib.hierrouter import encoders as E
    from nblib.hierrouter import pool as P
    from nblib.hierrouter.synthetic import right_step, wrong_step

    monkeypatch.setenv("NBLIB_CACHE", str(tmp_path))
    fn = {"a": right_step}
    monkeypatch.setattr(P, "make_pool", lambda names: [H.ScriptedStepModel("a", fn["a"], 1.0)])
    monkeypatch.setattr(E, "make_encoder", lambda spec: H.KindFeatures())
    _, first = H.table.step_table("train", 4, pool=["a"], encoder="hand:kind")
    assert first.misses == 0 and len(first.steps) > 0
    calls = []
    monkeypatch.setattr(H.StepCache, "expand", lambda self, *a, **k: calls.append(1) or self)
    H.table.step_table("train", 4, pool=["a"], encoder="hand:kind")
    assert calls == []                                              # same pool model: served from the cache
    fn["a"] = wrong_step                                            # "retrained": same name, other behaviour
    H.table.step_table("train", 4, pool=["a"], encoder="hand:kind")
    assert calls == [1]
