"""A scripted fake backend for the LWE tests: it knows each prompt's role and answers by a script."""
from __future__ import annotations

import pytest

from nblib import llm
from nblib.lwe import scripted

role_of, answers = scripted.role_of, scripted.answers   # how the package's scripted judge reads a prompt


class ScriptedLLM:
    """Answers every role by a script; counts its calls and keeps every prompt it was sent.

    judge: "longer" (the longer answer wins: swap-consistent), "always_a" (position-biased: inconsistent),
    "garbage" (no verdict), "empty" (an empty reply), or a callable(messages) -> text.
    update_chars: the length of each rewritten meta-prompt (below 726: rejected).
    """

    name = "scripted"

    def __init__(self, judge="longer", vanilla=None, update_chars=900, fail_after: int | None = None,
                 margin: float = 1.0):
        self.judge, self.vanilla = judge, vanilla or judge
        self.update_chars, self.fail_after, self.margin_value = update_chars, fail_after, margin
        self.calls: list[tuple[str, list[dict]]] = []
        self.scores: list[list[dict]] = []
        self.n_updates = 0

    def _verdict(self, how, messages) -> str:
        if callable(how):
            return how(messages)
        ans = answers(messages)
        if how == "longer":
            return "Explanation. [[A]]" if len(ans.get("A", "")) >= len(ans.get("B", "")) else "Reasons. [[B]]"
        if how == "always_a":
            return "A is better. [[A]]"
        if how == "garbage":
            return "I cannot decide between them."
        if how == "empty":
            return ""
        raise ValueError(how)

    def generate(self, prompt, max_new_tokens=64, temperature=0.0, stop=None, seed=None) -> llm.Generation:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise llm.LLMError("cannot reach the server at http://127.0.0.1:9/v1: is it running?")
        role = role_of(prompt)
        self.calls.append((role, prompt))
        if role == "vanilla":
            text = self._verdict(self.vanilla, prompt)
        elif role == "judge":
            text = self._verdict(self.judge, prompt)
        elif role == "rubric":
            text = f"Criteria for this question; compare A and B step by step (rubric {len(prompt[-1]['content'])})."
        elif role == "feedback":
            text = "{'score': 3, 'label': 'not sure', 'learned tips': ['check facts'], 'reasoning': 'ok'}"
        else:
            self.n_updates += 1
            import hashlib  # a text that depends on the prompt only (so a resumed run sees the same rewrite)
            tag = hashlib.sha256(prompt[-1]["content"].encode()).hexdigest()[:8]
            text = (f"Meta-prompt {tag}: " + "write criteria and steps; " * 200)[: self.update_chars]
        return llm.Generation(text, [], None, llm.Usage(len(str(prompt)) // 4, max(1, len(text) // 4), 0.001, 1),
                              backend="scripted")

    def generate_batch(self, prompts_, **kw):
        return [self.generate(p, **kw) for p in prompts_]

    def choice_logprobs(self, messages, continuation, options=("A", "B")):
        """log P(A), log P(B): the first answer shown is preferred by `margin` nats (a position-biased scorer)."""
        self.scores.append(messages)
        return [0.0, -self.margin_value], 100


@pytest.fixture()
def answers_of():
    """The function that reads the two answers (A, B) out of a judge prompt."""
    return answers


@pytest.fixture()
def scripted():
    """ScriptedLLM(judge=..., update_chars=..., fail_after=...)."""
    return ScriptedLLM


@pytest.fixture()
def cases():
    from nblib import lwe

    return lwe.stream(lwe.load("hhh"), n=10)
