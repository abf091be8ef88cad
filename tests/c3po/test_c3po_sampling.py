"""Seeded sampling and traces: task models (batched K samples, FLOPs) and any nblib.llm LanguageModel (scripted)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nblib import c3po, llm
from nblib.c3po import sampling as S
from nblib.cost import Prices
from nblib.taskworld import load_model, problems, prompt_of
from nblib.taskworld.generation import generation_flops
from nblib.taskworld.models import shape_of


class ScriptedLM:
    """A fake LanguageModel: answers 'The answer is N.' where N is right with a per-model probability, by seed."""

    def __init__(self, name: str, p_right: float, words: int):
        self.name, self.p_right, self.words = name, p_right, words
        self.seeds: list[int | None] = []

    def generate(self, prompt, max_new_tokens=64, temperature=0.0, stop=None, seed=None):
        return self.generate_batch([prompt], max_new_tokens, temperature, stop, seed)[0]

    def generate_batch(self, prompts, max_new_tokens=64, temperature=0.0, stop=None, seed=None):
        self.seeds.append(seed)
        out = []
        for p in prompts:
            a, b = (int(x) for x in p.split("+"))
            rng = np.random.default_rng([seed or 0, a, b, len(self.name)])
            ans = a + b if rng.random() < self.p_right else a + b + int(rng.integers(1, 4))
            text = "I think. " * self.words + (f"The answer is {ans}." if rng.random() > 0.05 else "no idea")
            out.append(llm.Generation(text, text.split(), None, llm.Usage(len(p), len(text.split()), 0.0, 1),
                                      backend=f"fake:{self.name}"))
        return out


def the_answer_is(text: str) -> str | None:
    """Extract N from '... The answer is N.'"""
    import re

    m = re.search(r"answer is (-?\d+)", text)
    return m.group(1) if m else None


def test_llm_path_builds_traces_with_a_user_extractor():
    prompts = [f"{a}+{b}" for a in range(12) for b in range(5)]
    lms = [ScriptedLM("small", 0.5, 2), ScriptedLM("big", 0.95, 6)]
    gold = [sum(int(x) for x in p.split("+")) for p in prompts]
    tr = c3po.llm_traces(lms, prompts, k=4, extract=the_answer_is, gold=gold, seed=10)
    assert lms[0].seeds == [10, 11, 12, 13]                     # one seed per sample, not one for all K
    assert tr.models == ["small", "big"] and tr.k == 4 and tr.unit == "tokens"
    acc = tr.correct().mean(1)
    assert acc[1] > acc[0] + 0.2
    assert (tr.cost[1] > tr.cost[0]).all()                      # the big one talks more
    share_right = tr.share[0][tr.correct()[0]].mean()
    assert share_right > tr.share[0][~tr.correct()[0]].mean()   # votes carry signal
    ss, cal, test = c3po.random_split(tr.n_queries, 20, 20, seed=0)
    f = c3po.fit(tr, ss, cal, float(tr.cost.sum(0).max()), 0.2)
    assert f.regret_ss == 0.0
    usd = c3po.llm_traces(lms, prompts[:6], k=2, extract=the_answer_is,
                          prices=[Prices(usd_per_1m_prompt=1, usd_per_1m_completion=2)] * 2)
    assert usd.unit == "USD" and 0 < usd.cost.max() < 1e-3


def test_llm_path_errors():
    lm = ScriptedLM("a", 0.5, 1)
    with pytest.raises(ValueError, match="K"):
        c3po.llm_traces([lm], ["1+2"], k=0)
    with pytest.raises(ValueError, match="temperature"):
        c3po.llm_traces([lm], ["1+2"], k=2, temperature=0)
    with pytest.raises(ValueError, match="no prompts"):
        c3po.llm_traces([lm], [], k=2)
    with pytest.raises(ValueError, match="one Prices per model"):
        c3po.llm_traces([lm], ["1+2"], k=2, prices=[Prices(), Prices()])


def test_majority_and_vote_share():
    from nblib.c3po.traces import majority

    assert majority(["3", None, "4", "3", None]) == ("3", 0.4)  # None counts in the denominator
    assert majority(["4", "3", "3", "4"]) == ("4", 0.5)          # a tie goes to the answer drawn first
    assert majority([None, None]) == (None, 0.0)


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    return load_model("tiny")


def test_task_model_samples_are_seeded_batched_and_costed(tiny):
    probs = problems.problems("test", 6, seed=3)
    a = S.sample_task_model("tiny", probs, k=4, temperature=0.8, seed=1, model=tiny)
    b = S.sample_task_model("tiny", probs, k=4, temperature=0.8, seed=1, model=tiny)
    c = S.sample_task_model("tiny", probs, k=4, temperature=0.8, seed=2, model=tiny)
    assert a.answers == b.answers and a.texts == b.texts
    assert a.texts != c.texts
    assert all(len(row) == 4 for row in a.answers) and len({t for row in a.texts for t in row}) > 6
    texts, toks, flops = S.sample_texts(tiny, [prompt_of(p) for p in probs], 4, 0.8, seed=1, name="tiny")
    assert texts == a.texts
    shape = shape_of(tiny)
    for i, p in enumerate(probs):
        for j in range(4):
            assert flops[i, j] == generation_flops(shape, len(prompt_of(p)) + 1, int(toks[i, j]))
    np.testing.assert_allclose(a.cost, flops.sum(1))
    assert a.greedy is not None and a.greedy_cost.shape == (6,)
    with pytest.raises(ValueError, match="K"):
        S.sample_texts(tiny, ["1,+2\n"], 0)
    with pytest.raises(ValueError, match="temperature"):
        S.sample_texts(tiny, ["1,+2\n"], 2, temperature=0.0)


def test_default_extractor_reads_the_answer_line():
    assert S.answer_line("3+4=7\n#7") == "7"
    assert S.answer_line("3+4=7") is None
