"""Per-query cascade traces: every model's K answers reduced to a majority answer, its vote share and a cost.

`CascadeTraces` is what every cascade, baseline, guarantee check and slider reads: numpy arrays over
(models, queries), models sorted by cost (cheapest first; the last one is the most powerful model, MPM).
Answers are integer codes shared across models (-1 = no parsable answer), so "agrees with the MPM" and
"is correct" are array comparisons. Labels (`gold`) are optional and only ever used for accuracy.

    tr = task_traces(("tiny", "mid", "large"), split="test", n=400, k=5)     # cached per model
    tr = llm_traces([lm_small, lm_big], prompts, k=5, extract=my_parser, gold=answers)
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..taskworld import problems as T
from ..taskworld.models import LADDER
from . import sampling as S


@dataclass
class CascadeTraces:
    """Majority answers, vote shares and costs of M models on Q queries (models cheapest first)."""

    models: list[str]
    k: int
    answer: np.ndarray          # (M, Q) int code of each model's majority answer (-1: none parsable)
    share: np.ndarray           # (M, Q) vote share of that answer, count / K (None answers count in K)
    cost: np.ndarray            # (M, Q) cost of the model's K samples on the query
    tokens: np.ndarray          # (M, Q) completion tokens of those K samples
    unit: str = "FLOPs"
    gold: np.ndarray | None = None          # (Q,) code of the right answer (labels; accuracy only)
    greedy: np.ndarray | None = None        # (M, Q) code of each model's greedy answer (task models)
    greedy_cost: np.ndarray | None = None   # (M, Q) cost of that greedy decode
    queries: list[str] | None = None        # (Q,) the problem texts
    codebook: list[str] | None = None       # code -> answer string
    temperature: float = S.DEFAULT_TEMPERATURE
    samples: list[list[list[str | None]]] | None = None  # (M, Q, K) raw extracted answers
    runner_up: np.ndarray | None = None     # (M, Q) vote share of the second most frequent answer
    greedy_tokens: np.ndarray | None = None  # (M, Q) completion tokens of each greedy decode
    prompt_tokens: np.ndarray | None = None  # (Q,) prompt tokens of one call on the query (task models)
    last_greedy: bool = False                # the last model answers once, greedily (c3po.lens.greedy_last)

    @property
    def n_models(self) -> int:
        """M, the number of models in the cascade."""
        return self.answer.shape[0]

    @property
    def n_queries(self) -> int:
        """Q, the number of queries."""
        return self.answer.shape[1]

    @property
    def mpm(self) -> np.ndarray:
        """(Q,) the most powerful (last) model's majority answer: the label-free pseudo-label."""
        return self.answer[-1]

    def correct(self) -> np.ndarray:
        """(M, Q) whether each model's majority answer is right (needs labels)."""
        return self.answer == self.require_gold()[None, :]

    def require_gold(self) -> np.ndarray:
        """The labels, or a ValueError saying accuracy needs them."""
        if self.gold is None:
            raise ValueError("these traces have no labels (gold answers): pass gold=... to build them; the "
                             "cascade itself is label-free, only accuracy needs labels")
        return self.gold

    def subset(self, idx) -> "CascadeTraces":
        """The traces of a subset of queries (index array or boolean mask)."""
        idx = np.asarray(idx)
        pick = (lambda a: None if a is None else a[..., idx])
        qs = None if self.queries is None else [self.queries[i] for i in np.arange(self.n_queries)[idx]]
        smp = None if self.samples is None else [[m[i] for i in np.arange(self.n_queries)[idx]]
                                                 for m in self.samples]
        return CascadeTraces(list(self.models), self.k, self.answer[:, idx], self.share[:, idx], self.cost[:, idx],
                             self.tokens[:, idx], self.unit, pick(self.gold), pick(self.greedy),
                             pick(self.greedy_cost), qs, self.codebook, self.temperature, smp,
                             pick(self.runner_up), pick(self.greedy_tokens), pick(self.prompt_tokens),
                             self.last_greedy)

    def frame(self):
        """One row per (query, model): majority answer, vote share, cost, correct (when labelled)."""
        import pandas as pd

        rows = []
        for m, name in enumerate(self.models):
            for q in range(self.n_queries):
                r = {"query": q if self.queries is None else self.queries[q], "model": name,
                     "answer": self.decode(self.answer[m, q]), "vote_share": float(self.share[m, q]),
                     f"cost ({self.unit})": float(self.cost[m, q]), "tokens": int(self.tokens[m, q])}
                if self.gold is not None:
                    r["correct"] = bool(self.answer[m, q] == self.gold[q])
                rows.append(r)
        return pd.DataFrame(rows)

    def decode(self, code: int) -> str | None:
        """The answer string of a code (None for -1)."""
        return None if code < 0 or self.codebook is None else self.codebook[int(code)]


def majority(answers: Sequence[str | None]) -> tuple[str | None, float]:
    """The most frequent parsable answer and its vote share count / K (ties: the one drawn first)."""
    k = len(answers)
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None, 0.0
    best = max(counts.values())
    top = next(a for a in answers if a is not None and counts[a] == best)
    return top, best / k


def from_samples(samples: Sequence[S.ModelSamples], gold: Sequence | None = None,
                 queries: Sequence[str] | None = None, prompt_tokens: np.ndarray | None = None) -> CascadeTraces:
    """Stack per-model samples (given cheapest first) into CascadeTraces; answers get shared integer codes."""
    if not samples:
        raise ValueError("a cascade needs at least one model's samples")
    q, k = len(samples[0].answers), samples[0].k
    for s in samples:
        if len(s.answers) != q:
            raise ValueError(f"{s.name} has {len(s.answers)} queries, {samples[0].name} has {q}: sample the same "
                             "queries with every model")
        if s.k != k:
            raise ValueError(f"{s.name} drew K={s.k} samples, {samples[0].name} K={k}: use one K for the cascade")
        if s.unit != samples[0].unit:
            raise ValueError(f"{s.name}'s cost is in {s.unit}, {samples[0].name}'s in {samples[0].unit}")
    book: dict[str, int] = {}

    def code(a) -> int:
        if a is None:
            return -1
        return book.setdefault(str(a), len(book))

    m = len(samples)
    ans, share, second = np.full((m, q), -1, dtype=np.int64), np.zeros((m, q)), np.zeros((m, q))
    for i, s in enumerate(samples):
        for j, row in enumerate(s.answers):
            a, sh = majority(row)
            ans[i, j], share[i, j] = code(a), sh
            counts = sorted(Counter(x for x in row if x is not None).values(), reverse=True)
            second[i, j] = counts[1] / k if len(counts) > 1 else 0.0
    g = None if gold is None else np.array([code(str(x)) for x in gold], dtype=np.int64)
    greedy = gcost = gtok = None
    if all(s.greedy is not None for s in samples):
        greedy = np.array([[code(a) for a in s.greedy] for s in samples], dtype=np.int64)
        gcost = np.stack([np.asarray(s.greedy_cost, dtype=np.float64) for s in samples])
        if all(getattr(s, "greedy_tokens", None) is not None for s in samples):
            gtok = np.stack([np.asarray(s.greedy_tokens, dtype=np.int64) for s in samples])
    if gold is not None and len(gold) != q:
        raise ValueError(f"{len(gold)} labels for {q} queries")
    return CascadeTraces([s.name for s in samples], k, ans, share, np.stack([s.cost for s in samples]).astype(float),
                         np.stack([s.tokens for s in samples]), samples[0].unit, g, greedy, gcost,
                         None if queries is None else list(queries), list(book), samples[0].temperature,
                         [s.answers for s in samples], second, gtok, prompt_tokens)


def cached_task_samples(name: str, split: str = "test", n: int = 400, k: int = S.DEFAULT_K,
                        temperature: float = S.DEFAULT_TEMPERATURE, seed: int = 0,
                        cfg: T.TaskConfig | None = None, verbose: bool = True) -> S.ModelSamples:
    """One task model's K samples (and greedy answer) on `n` problems of a split; cached per (model, split, n, K, ...)."""
    from ..cache import cached
    from ..taskworld import generation
    from ..taskworld.models import checkpoint_folder

    from ..taskworld.models import default_task

    k, temperature = S.check_k(k), S.check_temperature(temperature)
    cfg = cfg if cfg is not None else default_task(name)
    folder = checkpoint_folder(name)
    sha = json.loads((folder / "train.json").read_text()).get("sha256")
    config = {"model": name, "sha256": sha, "split": split, "n": n, "k": k, "temperature": temperature,
              "seed": seed, "cfg": cfg}

    def compute():
        return S.sample_task_model(name, T.problems(split, n, seed, cfg), k, temperature, seed)

    code = (S.sample_task_model, S.sample_texts, S.answer_line, S.seed_of, generation.generation_flops,
            generation.generate, generation.solve, T.problems, T.iter_problems, T.sample_problem)
    return cached("c3po_samples", config, compute, code=code, verbose=verbose)


def task_traces(models: Sequence[str] = LADDER, split: str = "test", n: int = 400,
                k: int = S.DEFAULT_K, temperature: float = S.DEFAULT_TEMPERATURE, seed: int = 0,
                cfg: "T.TaskConfig | T.TaskMix | None" = None, verbose: bool = True) -> CascadeTraces:
    """Cascade traces of task-world models (give them cheapest first) on n problems, with labels; cached.

    cfg defaults to the first model's own task (the v2 mix for the v2 ladder).
    """
    from ..taskworld.models import default_task, encode, prompt_of

    if isinstance(models, str):
        raise TypeError(f"models must be a sequence of model names, cheapest first (e.g. {list(LADDER)}), "
                        f"not the string {models!r}")
    if not isinstance(models, (list, tuple)) or len(models) < 1:
        raise ValueError(f"models must be a non-empty list of model names, cheapest first (e.g. {list(LADDER)}): "
                         f"a cascade needs at least one model, got {models!r:.80}")
    cfg = cfg if cfg is not None else default_task(models[0])
    probs = T.problems(split, n, seed, cfg)
    from ..checks import cost_order
    from ..cost import transformer_flops
    from ..taskworld.models import load_model, shape_of

    per_token = [transformer_flops(shape_of(load_model(m)), 1, 1, past=32, logits_positions=1) for m in models]
    cost_order("models (FLOPs per token)", models, per_token)   # cheapest first: the last is the MPM
    samples = [cached_task_samples(m, split, n, k, temperature, seed, cfg, verbose) for m in models]
    ptok = np.array([len(encode(prompt_of(p))) for p in probs], dtype=np.int64)
    return from_samples(samples, gold=[p.answer for p in probs], queries=[p.text for p in probs], prompt_tokens=ptok)


def llm_traces(lms: Sequence, prompts: Sequence, k: int = S.DEFAULT_K,
               extract: Callable[[str], str | None] = S.answer_line, gold: Sequence | None = None,
               temperature: float = S.DEFAULT_TEMPERATURE, seed: int = 0, max_new_tokens: int = 128,
               prices: Sequence | None = None, stop: Sequence[str] | None = None) -> CascadeTraces:
    """Cascade traces of any `nblib.llm` LanguageModels (cheapest first) on the prompts; cost in USD or tokens.

    `prices`: one `nblib.cost.Prices` per model (USD per 1M prompt / completion tokens), else the cost
    is tokens (prompt + completion) of the K samples. `gold`: optional labels, for accuracy only.
    """
    if isinstance(lms, str) or not isinstance(lms, (list, tuple)) or len(lms) < 1:
        raise ValueError(f"lms must be a non-empty list of language models, cheapest first: a cascade needs at "
                         f"least one model, got {lms!r:.80}")
    if prices is not None and len(prices) != len(lms):
        raise ValueError(f"{len(prices)} price entries for {len(lms)} models: give one Prices per model")
    samples = [S.sample_llm(lm, prompts, k, extract, temperature, seed, max_new_tokens, stop,
                            None if prices is None else prices[i]) for i, lm in enumerate(lms)]
    qs = [p if isinstance(p, str) else str(p) for p in prompts]
    return from_samples(samples, gold=gold, queries=qs)
