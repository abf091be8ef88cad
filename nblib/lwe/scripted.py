"""Scripted judges (simulations, clearly labelled): a controlled inconsistency rate r, run through the real code.

A `ScriptedJudge` is an `nblib.llm` backend that reads each prompt the real judges send (which role it is,
which case, which answer is shown first) and answers by a script instead of a model:

- on a share r of the cases (exactly round(r n), drawn with a seed) the *vanilla* judge is position-biased:
  it says [[A]] in both orders, so the two verdicts contradict each other (swap-inconsistent);
- on the other cases it is swap-consistent and right with probability `accuracy` (the same verdict in both
  orders);
- the LWE judge (a prompt with a generated rubric) is right with probability `lwe_accuracy` on every case,
  in both orders;
- rubric, self-feedback and rewrite calls get fixed texts (a rewrite long enough to pass the 726 rule);
- its log-prob scorer prefers the first-shown answer by `bias` nats, plus `signal` nats toward its verdict
  on consistent cases (content-free prompts get the bias alone).

Accuracies are what the script says (assumptions, not measurements); the *calls* are what `nblib.lwe.run`
makes, so the call counts per case are the code's own. `sweep` runs LWE and Selective LWE over a grid of
r and B.
"""
from __future__ import annotations

import hashlib
import random
import re

from .. import checks, llm
from . import prompts
from .data import Case

_ANS = re.compile(r"\[The Start of Assistant ([AB])'s Answer\]\n(.*?)\n\[The End of Assistant \1's Answer\]", re.S)
_Q = re.compile(r"\[User Question\]\n(.*?)\n\n\[The Start of Assistant A's Answer\]", re.S)
R_GRID = tuple(round(0.1 * i, 1) for i in range(1, 11))      # r = 0.1 ... 1.0


def role_of(messages: list[dict]) -> str:
    """Which of the judge's roles a prompt is ("vanilla", "rubric", "judge", "feedback", "update")."""
    user = messages[-1]["content"]
    if messages[0]["role"] == "system" and messages[0]["content"] == prompts.VANILLA_SYSTEM:
        return "vanilla"
    if user.startswith(prompts.UPDATE_HEADER):
        return "update"
    if user.startswith(prompts.FEEDBACK_HEADER):
        return "feedback"
    if prompts.RUBRIC_RULES in user:
        return "rubric"
    return "judge"


def answers(messages: list[dict]) -> dict:
    """The answers shown as A and B in a prompt ({} when it shows none)."""
    return dict(_ANS.findall(messages[-1]["content"]))


class ScriptedJudge:
    """A simulated judge, swap-inconsistent on exactly round(r n) of `cases` (see the module docstring)."""

    def __init__(self, cases: list[Case], r: float, accuracy: float = 0.8, lwe_accuracy: float | None = None,
                 seed: int = 0, bias: float = 1.0, signal: float = 2.0, max_chars: int = 600, update_chars: int = 900):
        cases = checks.non_empty("cases", cases, "case")
        self.r = checks.number("r", r, 0, 1, hint="the share of swap-inconsistent cases of a scripted judge")
        self.accuracy = checks.number("accuracy", accuracy, 0, 1)
        self.lwe_accuracy = checks.number("lwe_accuracy", self.accuracy if lwe_accuracy is None else lwe_accuracy, 0, 1)
        self.bias, self.signal = checks.number("bias", bias), checks.number("signal", signal, 0)
        self.seed, self.max_chars = checks.whole("seed", seed), checks.whole("max_chars", max_chars, low=1)
        self.update_chars = checks.whole("update_chars", update_chars, low=0)
        rng = random.Random(seed)
        ids = [c.id for c in cases]
        order = ids[:]
        rng.shuffle(order)
        self.inconsistent = set(order[:round(self.r * len(cases))])
        self.right = {i: rng.random() < self.accuracy for i in ids}          # the vanilla judge, consistent cases
        self.lwe_right = {i: rng.random() < self.lwe_accuracy for i in ids}  # the LWE judge
        self._by_text = {}
        for c in cases:
            a, b = prompts.clip(c.output1, max_chars), prompts.clip(c.output2, max_chars)
            better = a if c.better == "A" else b
            self._by_text[(prompts.clip(c.question, max_chars), frozenset((a, b)))] = (c.id, better)
        self.name = f"scripted r={self.r:g}"
        self.calls = 0

    def fingerprint(self) -> str:
        """What identifies this judge's answers: its parameters and its cases."""
        h = hashlib.sha256(repr((sorted(self._by_text.values()), self.r, self.accuracy, self.lwe_accuracy,
                                 self.seed, self.bias, self.signal, self.update_chars)).encode()).hexdigest()
        return f"scripted:{h[:16]}"

    def _case(self, messages) -> tuple[str | None, str | None]:
        """(case id, which position shows the better answer) of a prompt, or (None, None)."""
        ans = answers(messages)
        q = _Q.search(messages[-1]["content"])
        if len(ans) != 2 or q is None:
            return None, None
        hit = self._by_text.get((q.group(1), frozenset(ans.values())))
        if hit is None:
            return None, None
        cid, better = hit
        return cid, ("A" if ans["A"] == better else "B")

    def verdict(self, messages) -> str | None:
        """The scripted verdict for a vanilla or LWE judge prompt (None for an unknown case)."""
        role = role_of(messages)
        cid, pos = self._case(messages)
        if cid is None:
            return None
        if role == "vanilla" and cid in self.inconsistent:
            return "A"                                            # position bias: the first-shown answer
        right = self.right[cid] if role == "vanilla" else self.lwe_right[cid]
        return pos if right else ("B" if pos == "A" else "A")

    def generate(self, prompt, max_new_tokens: int = 64, temperature: float = 0.0, stop=None,
                 seed=None) -> llm.Generation:
        """The scripted reply to one prompt of the judges."""
        self.calls += 1
        role = role_of(prompt)
        if role in ("vanilla", "judge"):
            v = self.verdict(prompt)
            text = f"Scripted judgment. [[{v}]]" if v else "Scripted judgment: no case I know."
        elif role == "rubric":
            text = "Scripted rubric: compare correctness, helpfulness and harm, step by step; end with [[A]] or [[B]]."
        elif role == "feedback":
            text = "{'score': 4, 'label': 'absolutely confident', 'learned tips': ['scripted'], 'reasoning': 'scripted'}"
        else:
            tag = hashlib.sha256(prompt[-1]["content"].encode()).hexdigest()[:8]
            text = (f"Scripted meta-prompt {tag}: " + "write criteria and numbered steps; " * 60)[: self.update_chars]
        return llm.Generation(text, [], None, llm.Usage(len(str(prompt)) // 4, max(1, len(text) // 4), 0.0, 1),
                              finish_reason="stop", backend="scripted")

    def generate_batch(self, prompts_, **kw) -> list[llm.Generation]:
        """`generate` for each prompt."""
        return [self.generate(p, **kw) for p in prompts_]

    def choice_logprobs(self, messages, continuation, options=("A", "B")) -> tuple[list[float], int]:
        """log P(A), log P(B): `bias` toward the first-shown answer, plus `signal` toward the verdict if consistent."""
        cid, _ = self._case(messages)
        m = self.bias
        if cid is not None and (role_of(messages) != "vanilla" or cid not in self.inconsistent):
            m += self.signal if self.verdict(messages) == "A" else -self.signal
        return [0.0, -m], 100


def sweep(cases: list[Case], rs=R_GRID, batch_sizes=(4,), accuracy: float = 0.8, lwe_accuracy: float = 0.75,
          seed: int = 0, gate: str = "parsed"):
    """LWE and Selective LWE with a scripted judge at each r and B: one row per (r, B, method), from `lwe.run`."""
    import pandas as pd

    from .methods import JudgeConfig, formula_calls_per_case, run
    from .metrics import summarize

    rs = [checks.number("r", r, 0, 1, hint="a scripted judge's inconsistent share") for r in checks.non_empty("rs", rs, "r")]
    rows = []
    for r in rs:
        judge = ScriptedJudge(cases, r, accuracy, lwe_accuracy, seed)
        for b in batch_sizes:
            checks.whole("batch size", b, low=1)
            for method in ("vanilla", "lwe", "selective"):
                rec = run(method, judge, cases, JudgeConfig(batch_size=b, gate=gate))
                s = summarize(rec)
                rows.append({"judge": judge.name, "r": r, "B": b, "method": method, "n": rec.n,
                             "measured_r": s.get("inconsistent_share", float("nan")),
                             "calls_per_case": s["calls_per_case"],
                             "formula": formula_calls_per_case(method, b, r), "accuracy": s["accuracy"],
                             "accuracy_lo": s["accuracy_lo"], "accuracy_hi": s["accuracy_hi"], "status": rec.status})
    return pd.DataFrame(rows)
