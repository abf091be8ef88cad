"""The real pool: task models step hop by hop exactly as they solve in one go; the fixed-action policy
reproduces each model alone exactly; the step table is the same with and without the cache."""
from __future__ import annotations

import pytest

from nblib import hierrouter as H
from nblib import taskworld
from nblib.hierrouter import baselines as B
from nblib.taskworld import problems as T


@pytest.fixture(scope="module")
def real():
    probs = T.problems("test", 16, seed=7, n_steps=3)
    cache = H.StepCache(H.make_pool(["tiny", "spec-mul", "large"]), H.make_encoder("hidden:tiny"))
    return probs, cache.expand(probs, 3)


def test_hop_by_hop_lines_equal_the_models_own_greedy_solution(real):
    probs, cache = real
    for name in ("tiny", "large"):
        sols = taskworld.solve(taskworld.load_model(name), probs)
        for p, g in zip(probs, sols, strict=True):
            steps, _ = T.parse_solution(g.text)
            assert H.sequence_cost(cache, p, [name] * 3)[2] == steps[:3], (name, p.text)


def test_fixed_action_policy_reproduces_each_model_alone_on_the_real_pool(real):
    probs, cache = real
    mat = B.sequence_matrix(cache, probs, 3)
    unit = H.reference_cost(cache, probs, 3)
    rows = {r["method"]: r for r in B.single_models(mat, unit, lam=0.5)}
    misses = cache.misses
    for a, name in enumerate(cache.names):
        df = H.evaluate(H.FixedPolicy(a), probs, cache, 0.5, 3, unit)
        assert (df.quality.mean(), df.cost_flops.mean()) == (rows[f"{name} only"]["accuracy"],
                                                             rows[f"{name} only"]["cost_flops"])
    assert cache.misses == misses  # the expanded table already held every context
    assert rows["large only"]["accuracy"] > rows["tiny only"]["accuracy"]


def test_cost_per_call_is_flops_per_token_times_tokens_read_and_written(real):
    probs, cache = real
    large = cache.models["large"]
    assert large.flops_per_token / cache.models["tiny"].flops_per_token == pytest.approx(14.6, abs=0.3)
    out = cache.step(H.table.prompt(probs[0]), "large")
    assert out.tokens_in == len(probs[0].text) + 2  # <bos>, the problem line, the newline
    assert out.tokens_out == len(out.line) + 1      # the line and its newline
    assert cache.cost("large", out) == large.flops_per_token * (out.tokens_in + out.tokens_out)


def test_hidden_state_encoder_reads_the_query_and_the_context_end():
    enc = H.make_encoder("hidden:tiny:-1:3")
    p = T.problems("test", 1, seed=1, n_steps=3)[0]
    a = enc.encode([p.text + "\n"])[0]
    b = enc.encode([p.text + "\n" + p.step_lines[0] + "\n"])[0]
    assert a.shape == (64 * 4,)
    assert (a[:192] == pytest.approx(b[:192], abs=1e-5))  # the query's states do not depend on what follows
    assert abs(a[192:] - b[192:]).max() > 1e-3            # the context's end does
    with pytest.raises(ValueError, match="unknown encoder"):
        H.make_encoder("bert")


def test_the_cached_step_table_follows_the_pool_weights_not_the_names(tmp_path, monkeypatch):
    """Issue 23: a retrained pool model under the same name gets a new step table."""
    from nblib import hierrouter as H
    from nblib.hierrouter import encoders as E
    from nblib.hierrouter import pool as P
    from nblib.hierrouter.synthetic import right_step, wrong_step

    monkeypatch.setenv("NBLIB_CACHE", str(tmp_path))
    fn = {"a": right_step}
    monkeypatch.setattr(P, "make_pool", lambda names: [H.ScriptedStepModel("a", fn["a"], 1.0)])
    monkeypatch.setattr(E, "make_encoder", lambda spec: H.KindFeatures())
    _, first = H.table.step_table("train", 4, 2, pool=["a"], encoder="hand:kind")
    assert first.misses == 0 and len(first.steps) > 0
    calls = []
    monkeypatch.setattr(H.StepCache, "expand", lambda self, *a, **k: calls.append(1) or self)
    H.table.step_table("train", 4, 2, pool=["a"], encoder="hand:kind")
    assert calls == []                                              # same pool model: served from the cache
    fn["a"] = wrong_step                                            # "retrained": same name, other behaviour
    H.table.step_table("train", 4, 2, pool=["a"], encoder="hand:kind")
    assert calls == [1]
