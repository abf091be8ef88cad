"""The position-debiased verdict (contextual calibration, an adaptation) and Selective LWE's debiased gate."""
import numpy as np
import pytest

from nblib import checks, lwe
from nblib.lwe import debias


def _logprob_record(margins, swap_margins):
    cases = lwe.stream(lwe.load("hhh"), n=len(margins))

    class Fixed:
        name = "fixed"

        def __init__(self):
            self.by_prompt = {}

        def generate(self, *a, **k):
            raise AssertionError("the log-prob judge never generates")

        def choice_logprobs(self, messages, continuation, options=("A", "B")):
            return [self.by_prompt[messages[-1]["content"]], 0.0], 10

    lm = Fixed()
    cfg = lwe.JudgeConfig()
    for c, m, s in zip(cases, margins, swap_margins):
        lm.by_prompt[lwe.prompts.example_block(c.question, c.output1, c.output2, cfg.max_answer_chars)] = m
        lm.by_prompt[lwe.prompts.example_block(c.question, c.output2, c.output1, cfg.max_answer_chars)] = s
    return lwe.run("logprob", lm, cases, cfg)


def test_debiased_verdict_equals_the_raw_one_when_the_prior_is_flat():
    rng = np.random.default_rng(0)
    m, s = rng.normal(0.5, 1, 30), rng.normal(0.5, 1, 30)
    rec = _logprob_record(m, s)
    raw = [("A" if x > 0 else "B", "A" if y > 0 else "B") for x, y in zip(m, s)]
    flat = debias.per_order(rec, 0.0)
    assert [(r["verdict"], r["swap_verdict"]) for r in flat.cases] == raw
    assert all(debias.verdict(x, 0.0) == v for x, (v, _) in zip(m, raw))


def test_a_constant_position_prior_is_removed():
    # a judge whose margins are content (+-1) plus a position bias of 3 nats: raw, it always says "A"
    content = np.array([1.0, -1.0, 0.5, -0.5] * 5)
    rec = _logprob_record(content + 3.0, -content + 3.0)
    assert debias.inconsistent_share(rec, 0.0) == 1.0
    b = debias.swap_prior(*debias.margins(rec))
    assert b == pytest.approx(3.0)
    d = debias.per_order(rec, b)
    assert debias.inconsistent_share(rec, b) == 0.0
    assert [r["verdict"] for r in d.cases] == ["A" if c > 0 else "B" for c in content]
    assert np.allclose(debias.cross_fitted_swap_priors(*debias.margins(rec)), 3.0)


def test_debiased_gate_with_a_flat_prior_gates_on_the_raw_per_order_verdict(scripted, cases):
    # the conftest scorer prefers the first-shown answer in both orders: raw per-order verdicts always disagree
    rec = lwe.run("selective", scripted(judge="longer"), cases, lwe.JudgeConfig(gate="debiased", prior=0.0))
    assert all(r["used_lwe"] for r in rec.cases)
    assert rec.config["position_prior"] == 0.0 and "calibrate" not in rec.calls


def test_bad_prior_and_gate_are_clear_errors():
    with pytest.raises(checks.BadArgument, match="gate"):
        lwe.JudgeConfig(gate="both")
    with pytest.raises(checks.BadArgument, match="prior must be a number"):
        lwe.JudgeConfig(gate="debiased", prior=float("nan"))
    with pytest.raises(checks.BadArgument, match="both orders"):
        debias.swap_prior([], [])


def test_debiased_gate_without_scores_is_a_recorded_stop(cases):
    from nblib import llm

    class NoScores:
        name = "server"

        def generate(self, prompt, max_new_tokens=64, temperature=0.0, **kw):
            return llm.Generation("[[A]]", [], None, llm.Usage(1, 1, 0.0, 1))

    rec = lwe.run("selective", NoScores(), cases, lwe.JudgeConfig(gate="debiased"))
    assert rec.n == 0 and rec.status.startswith("stopped after 0") and "position prior" in rec.status


def test_decompose_splits_margins_into_what_flips_and_what_does_not():
    content = np.array([1.0, -1.0, 0.5, -0.5] * 5)
    position = np.array([3.0, 3.2, 2.8, 3.0] * 5)
    rec = _logprob_record(content + position, -content + position)
    d = debias.decompose(rec)
    assert d["n"] == 20 and d["content_sd"] == pytest.approx(content.std())
    assert d["position_sd"] == pytest.approx(position.std()) and d["position_mean"] == pytest.approx(3.0)
    assert d["content_wins"] == 1.0  # |content| >= 0.5 > |position - 3| <= 0.2: every case consistent after debiasing
    assert debias.inconsistent_share(rec, d["position_mean"]) == 0.0
    wide = _logprob_record(content + 4 * (position - 3) + 3, -content + 4 * (position - 3) + 3)
    assert debias.decompose(wide)["content_wins"] < 1.0
