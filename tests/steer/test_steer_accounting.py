"""Three cost accountings from one ledger: endpoints exact, a hand count, latency profiles, the result-digit read."""
from __future__ import annotations

import numpy as np
import pytest

from nblib import steer
from nblib import taskworld as tw
from nblib.cost import transformer_flops
from nblib.steer import accounting as acc
from nblib.steer import latency
from nblib.steer.engine import ConfidenceDecider, Router, RouterConfig
from nblib.taskworld.generation import generate

NAMES = {"small": "v2-tiny", "large": "v2-large"}


def linear_profile(a=1e-3, b=1e-4, models=("v2-tiny", "v2-large"), scale=(1.0, 7.0)):
    """A made-up profile: a + b x tokens seconds per forward, the large model `scale` times dearer."""
    chunks = (1, 2, 4, 8, 16, 32, 64, 128)
    return latency.LatencyProfile("test", "modelled", chunks,
                                  {m: tuple(s * (a + b * k) for k in chunks) for m, s in zip(models, scale, strict=True)})


def profiles():
    return {"latency_cpu": linear_profile(), "latency_gpu": linear_profile(scale=(1.0, 20.0))}


def f(shape, n, past):
    return transformer_flops(shape, 1, n, past=past, logits_positions=1)


def costs_of(run):
    row = acc.ledger_row(run.events)
    return {a: acc.cost(row, a, NAMES, profiles()) for a in acc.ACCOUNTINGS}


def plain_costs(model, prompt, name):
    """Each accounting of plain greedy decoding by one model, counted from `generate`'s tokens alone."""
    g = generate(model, [prompt], max_new_tokens=steer.TASKWORLD.max_tokens - len(tw.encode(prompt)))[0]
    shape = tw.models.shape_of(model)
    P, n = g.prompt_tokens, len(g.tokens)
    gen = sum(f(shape, 1, P - 1 + k) for k in range(n))           # token k is generated at position P - 1 + k
    out = {"generated_flops": float(gen), "flops_with_reads": float(g.flops)}
    for a, prof in profiles().items():                                # one prompt read, then n - 1 single tokens
        out[a] = prof.time(name, P) + (n - 1) * prof.time(name, 1)
    return out


@pytest.mark.parametrize("tau, who", [(0.0, "tiny"), (1.0, "large")])
def test_endpoints_equal_small_only_and_large_only_under_every_accounting(task_models, test_problems, tau, who):
    router = Router(task_models["tiny"], task_models["large"], steer.TaskVocab(), config=steer.TASKWORLD_READ)
    prompts = [tw.prompt_of(p) for p in test_problems[:10]]
    runs = router.run(prompts, [tau], ConfidenceDecider())[0]
    name = NAMES["small" if who == "tiny" else "large"]
    for prompt, r in zip(prompts, runs, strict=True):
        got, want = costs_of(r), plain_costs(task_models[who], prompt, name)
        assert got["generated_flops"] == want["generated_flops"] and got["flops_with_reads"] == want["flops_with_reads"]
        for a in ("latency_cpu", "latency_gpu"):
            assert got[a] == pytest.approx(want[a], rel=1e-12)
        other = "large" if who == "tiny" else "small"
        row = acc.ledger_row(r.events)
        assert row[f"gen_tokens_{other}"] == 0 and row[f"flops_{other}"] == 0 and not row[f"calls_{other}"]


def test_hand_counted_example_matches_the_ledger_in_each_accounting(task_models):
    """Two steps and the answer line, routed small / large / small: every accounting counted by hand."""
    from collections import Counter

    class Scripted:
        reads_small = True

        def value(self, problem, step, score):
            return 0.0 if step == 1 else 1.0   # tau = 0.5: step 1 goes to the large model, steps 0 and 2 stay

    prompt = "4,+3,-2\n"
    router = Router(task_models["tiny"], task_models["large"], steer.TaskVocab(),
                    config=RouterConfig("max_prob", 1, "first"))
    r = router.run([prompt], [0.5], Scripted())[0][0]
    assert [s.author for s in r.steps] == ["small", "large", "small"]
    P = 1 + len(prompt)                       # <bos> + characters
    n0, n1, n2 = (len(s.ids) for s in r.steps)
    S, L = tw.models.shape_of(task_models["tiny"]), tw.models.shape_of(task_models["large"])
    c = costs_of(r)
    # FLOPs with reads. small: the prompt, its own tokens, its last one at boundary 1 (its one-token draft of
    # step 1, thrown away), the large model's step 1 at boundary 2, its own tokens. large: the prompt and step 0
    # in one pass, then its own tokens
    small = (f(S, P, 0) + sum(f(S, 1, P + k) for k in range(n0 - 1)) + f(S, 1, P + n0 - 1)
             + f(S, n1, P + n0) + sum(f(S, 1, P + n0 + n1 + k) for k in range(n2 - 1)))
    large = f(L, P + n0, 0) + sum(f(L, 1, P + n0 + k) for k in range(n1 - 1))
    assert c["flops_with_reads"] == small + large
    # generated tokens, each at its position: the small model's n0 + 1 (the draft) + n2, the large model's n1
    gen_small = sum(f(S, 1, P - 1 + k) for k in range(n0 + 1)) + sum(f(S, 1, P + n0 + n1 - 1 + k) for k in range(n2))
    gen_large = sum(f(L, 1, P + n0 - 1 + k) for k in range(n1))
    assert c["generated_flops"] == gen_small + gen_large
    assert r.generated_tokens_of("small") == n0 + 1 + n2 and r.generated_tokens_of("large") == n1
    # latency: one priced forward pass per call
    calls_small = Counter({P: 1}) + Counter({1: n0 + n2 - 1}) + Counter({n1: 1})
    calls_large = Counter({P + n0: 1}) + Counter({1: n1 - 1})
    row = acc.ledger_row(r.events)
    assert row["calls_small"] == dict(+calls_small) and row["calls_large"] == dict(+calls_large)
    for a, prof in profiles().items():
        want = sum(n * prof.time("v2-tiny", k) for k, n in calls_small.items()) \
            + sum(n * prof.time("v2-large", k) for k, n in calls_large.items())
        assert c[a] == pytest.approx(want, rel=1e-12)
    assert c["flops_with_reads"] > c["generated_flops"]       # reads are what separates the two FLOPs counts
    assert r.steps[1].handover_tokens == P + n0
    led = r.ledger().frame()                                   # the same events as an nblib.cost.Ledger
    assert led.loc["large prefill", "prompt tok"] == P + n0
    assert led["GFLOPs"].sum() * 1e9 == pytest.approx(c["flops_with_reads"])


def test_the_result_digit_read_scores_only_tokens_the_small_model_drafted(task_models, test_problems):
    import torch

    cfg = RouterConfig("max_prob", 16, "first", at="result")
    router = Router(task_models["tiny"], task_models["large"], steer.TaskVocab(), config=cfg)
    prompt = tw.prompt_of(test_problems[3])
    r = router.run([prompt], [0.999999999], ConfidenceDecider(steer.confidence.Identity()))[0][0]
    assert r.large_steps >= 1
    prefix = prompt
    for s in r.steps:
        assert s.read and max(s.read) < len(s.drafted)              # every scored position is a drafted token
        if s.author == "small":
            assert s.ids[:len(s.drafted)] == s.drafted              # the draft is the step's own beginning
        marker = tw.decode(s.drafted[:s.read[0]])
        assert "=" in marker or "#" in marker                       # read right after the result marker
        k = s.read[0]                                               # the small model's own score there, recomputed
        ids = torch.tensor([tw.encode(prefix) + s.drafted[:k]])
        with torch.no_grad():
            logits = task_models["tiny"](input_ids=ids).logits[0, -1]
        assert s.score == pytest.approx(float(steer.score_logits(logits, "max_prob")), abs=1e-5)
        assert int(logits.argmax()) == s.drafted[k]
        prefix += s.text


def test_the_paper_read_drafts_one_token_and_the_whole_step_read_the_step(task_models, test_problems):
    prompts = [tw.prompt_of(p) for p in test_problems[:6]]
    for cfg, most in ((RouterConfig("max_prob", 1, "first"), 1), (RouterConfig("max_prob", 16, "min"), 16)):
        runs = Router(task_models["tiny"], task_models["large"], steer.TaskVocab(), config=cfg).run(prompts, [0.0])[0]
        for r in runs:
            for s in r.steps:
                assert 1 <= len(s.drafted) <= most and s.read == list(range(len(s.read)))
                if most > 1:
                    assert s.drafted == s.ids[:len(s.drafted)] and len(s.drafted) == min(len(s.ids), 16)


def test_measured_and_modelled_profiles_are_monotone_in_chunk_length(task_models):
    models = {"v2-tiny": task_models["tiny"], "v2-large": task_models["large"]}
    for prof in (latency.measure_cpu(models, chunks=(1, 4, 16), repeats=2), latency.roofline()):
        for m in prof.seconds:
            t = prof.time(m, np.arange(1, 300))
            assert np.all(np.diff(t) >= 0) and np.all(t > 0), (prof.name, m)
    with pytest.raises(ValueError, match="non-decreasing"):
        latency.LatencyProfile("bad", "measured", (1, 2), {"m": (2e-3, 1e-3)})
    g = latency.roofline()
    assert g.kind == "modelled" and "H100" in g.label
    # batch-1 decoding is memory-bound: reading 16 tokens costs the same as one
    assert g.time("v2-large", 16) == pytest.approx(g.time("v2-large", 1))


def test_unknown_accounting_missing_profile_model_and_bad_read_are_clear_errors(task_models):
    router = Router(task_models["tiny"], task_models["large"], steer.TaskVocab(), config=RouterConfig())
    r = router.run(["4,+3,-2\n"], [0.5], steer.RandomDecider(0))[0][0]
    row = acc.ledger_row(r.events)
    with pytest.raises(steer.UnknownAccounting, match="generated_flops"):
        acc.cost(row, "dollars", NAMES, profiles())
    with pytest.raises(steer.UnknownAccounting, match="latency profile"):
        acc.cost(row, "latency_cpu", NAMES, {})
    with pytest.raises(steer.MissingModel, match="v2-large"):
        acc.cost(row, "latency_cpu", NAMES, {"latency_cpu": linear_profile(models=("v2-tiny", "v2-mid"))})
    with pytest.raises(ValueError, match="unknown read position"):
        RouterConfig(at="middle")
    with pytest.raises(ValueError, match="unknown confidence read"):
        steer.FrontierConfig(read="gut feeling")
    with pytest.raises(ValueError, match="unknown GPU"):
        latency.roofline(gpu="TPU v9")
