"""STEER over `nblib.llm` models (servers): scripted fakes, and the refusal when a server gives no logprobs."""
from __future__ import annotations

import math

import pytest

from nblib import steer
from nblib.llm import Generation, LogprobsUnavailable, Usage


class Scripted:
    """A fake LanguageModel: answers each call with the next scripted step (text, first-token probability)."""

    def __init__(self, name, steps, logprobs=True):
        self.name, self.steps, self.calls, self.logprobs = name, list(steps), [], logprobs

    def generate(self, prompt, max_new_tokens=64, temperature=0.0, stop=None, seed=None):
        self.calls.append(prompt)
        text, p = self.steps[min(len(self.calls), len(self.steps)) - 1]
        lp = [math.log(p)] + [0.0] * (len(text) - 1) if self.logprobs else None
        finish = "stop" if text else "length"
        return Generation(text, list(text), lp, Usage(len(prompt), len(text), 0.0, 1), finish, backend=self.name)


def test_scripted_pair_routes_low_confidence_steps():
    small = Scripted("s", [("a=1", 0.9), ("b=2", 0.2), ("Answer: 3", 0.95)])
    large = Scripted("l", [("b=5", 0.99)])
    fmt = steer.StepFormat("\n", answer_marker="Answer:", max_steps=5)
    run = steer.route_text(small, large, "Q\n", 0.5, fmt=fmt, lookahead=1)
    assert [s.author for s in run.steps] == ["small", "large", "small"]
    assert run.text == "a=1\nb=5\nAnswer: 3\n"
    assert large.calls == ["Q\na=1\n"]              # the large model saw the context so far
    assert small.calls[-1] == "Q\na=1\nb=5\n"       # the small model reads the large model's step
    f = run.ledger.frame()
    assert f.loc["small step 1", "wasted"] is True and f["calls"].sum() == 4


def test_endpoints_of_the_text_path():
    mk = lambda: Scripted("s", [("x", 0.5), ("Answer: 1", 0.5)])  # noqa: E731
    fmt = steer.StepFormat("\n", answer_marker="Answer:", max_steps=5)
    lo = steer.route_text(mk(), Scripted("l", [("y", 1.0)]), "Q\n", 0.0, fmt=fmt)
    assert all(s.author == "small" for s in lo.steps)
    hi = steer.route_text(mk(), Scripted("l", [("y", 1.0), ("Answer: 2", 1.0)]), "Q\n", 1.0, fmt=fmt)
    assert all(s.author == "large" for s in hi.steps)


def test_a_server_without_logprobs_is_refused():
    small = Scripted("http:transformers-serve", [("a", 0.9)], logprobs=False)
    with pytest.raises(LogprobsUnavailable, match="log-probabilities"):
        steer.route_text(small, Scripted("l", [("b", 1.0)]), "Q\n", 0.5)
    with pytest.raises(ValueError, match="threshold"):
        steer.route_text(small, small, "Q\n", 2.0)
