"""STEER over any two `nblib.llm` language models (local or OpenAI-compatible servers), one call per step.

Servers keep no KV cache of ours between calls, so this path asks the small model
to draft each step (its log-probabilities give the confidence), keeps the draft
or throws it away and asks the large model for that step. Its ledger counts
prompt and completion tokens per model and call (each call re-reads the context:
a server with prefix caching does that part cheaper). A backend that returns no
log-probabilities (e.g. `transformers serve`) is refused with
`nblib.llm.LogprobsUnavailable`. For two local Hugging Face models that share a
tokenizer, `nblib.steer.pair.hf_router` runs the cached, FLOP-counted engine instead.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..cost import Ledger
from ..llm import require_logprobs
from .confidence import Identity, aggregate
from .engine import goes_large
from .routing import check_threshold
from .steps import BLANK_LINE, DelimiterNeverOccurs, StepFormat


@dataclass
class TextStep:
    """One step of a text-routed run."""

    author: str
    text: str
    score: float
    value: float
    draft: str  # the small model's draft (kept when author == 'small')


@dataclass
class TextRun:
    """A routed run over two LanguageModels: the text, the steps and a token ledger."""

    prompt: str
    text: str
    steps: list[TextStep]
    ledger: Ledger = field(default_factory=Ledger)

    @property
    def large_share(self) -> float:
        """Share of steps the large model wrote."""
        return sum(s.author == "large" for s in self.steps) / max(len(self.steps), 1)


def route_text(small, large, prompt: str, threshold: float, calibrator=None, fmt: StepFormat = BLANK_LINE,
               lookahead: int = 4, how: str = "min") -> TextRun:
    """Route one prompt step by step between two `nblib.llm` models (see the module docstring)."""
    tau = check_threshold(threshold)
    cal = calibrator or Identity()
    if not isinstance(prompt, str) or not prompt:
        raise ValueError("route_text needs a non-empty string prompt (format chat messages into text first)")
    ctx, steps, led = prompt, [], Ledger()
    ended_by_delimiter = 0
    for k in range(fmt.max_steps):
        ctx += fmt.prefix(k + 1)
        draft = small.generate(ctx, max_new_tokens=fmt.max_step_tokens, stop=[fmt.delimiter])
        lps = require_logprobs(draft)
        led.add(f"small step {k}", prompt_tokens=draft.usage.prompt_tokens,
                completion_tokens=draft.usage.completion_tokens, calls=1, wall_ms=draft.usage.wall_s * 1e3)
        score = aggregate([math.exp(x) for x in lps[:lookahead]], how) if lps else 0.0
        value = float(cal(np.array([score]))[0])
        gen, author = draft, "small"
        if goes_large(value, tau):
            gen, author = large.generate(ctx, max_new_tokens=fmt.max_step_tokens, stop=[fmt.delimiter]), "large"
            led.entries[-1].extra["wasted"] = True
            led.add(f"large step {k}", prompt_tokens=gen.usage.prompt_tokens,
                    completion_tokens=gen.usage.completion_tokens, calls=1, wall_ms=gen.usage.wall_s * 1e3)
        text = gen.text
        hit = gen.finish_reason == "stop" and bool(text.strip())
        if hit:
            text += fmt.delimiter
            ended_by_delimiter += 1
        steps.append(TextStep(author, text, score, value, draft.text))
        ctx += text
        if not text.strip() or fmt.is_answer(gen.text) or gen.finish_reason != "stop":
            break
    if steps and ended_by_delimiter == 0 and all(s.text.strip() for s in steps) and len(steps) >= 2:
        raise DelimiterNeverOccurs(f"the step delimiter {fmt.delimiter!r} never ended a step")
    return TextRun(prompt, ctx[len(prompt):], steps, led)
