"""Seeded temperature sampling: K answers per query from a task model or from any `nblib.llm` LanguageModel.

Task models: the K samples of a query are the prompt repeated K times in one left-padded batch of
transformers' `model.generate(do_sample=True, temperature=T, top_k=0, top_p=1)` (pure temperature
sampling), seeded per (seed, model, batch) with `torch.manual_seed`, so a trace is reproducible for a
fixed problem list and batch size. FLOPs of each sample are the task world's analytic count
(`taskworld.generation.generation_flops`: prefill, then one token at a time with a KV cache).

LanguageModels (`nblib.llm`: a local transformers model or an OpenAI-compatible server): sample k of
every prompt is drawn with seed `seed + k` (a server given one seed for every request would return K
copies of one answer); answers come from a user-supplied `extract(text) -> str | None`, by default the
task world's `#answer` line.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from ..cost import Prices
from ..taskworld import problems as T
from ..taskworld.generation import generation_flops
from ..taskworld.models import EOS, PAD, decode, encode, prompt_of, shape_of

DEFAULT_TEMPERATURE = 0.7
DEFAULT_K = 5


@dataclass
class ModelSamples:
    """K sampled answers per query from one model, with their tokens and cost (and a greedy answer if taken)."""

    name: str
    answers: list[list[str | None]]          # (Q, K) extracted answers, None = unparsable
    tokens: np.ndarray                       # (Q,) completion tokens over the K samples
    cost: np.ndarray                         # (Q,) cost of the K samples (FLOPs, or USD / tokens for LLMs)
    unit: str = "FLOPs"
    temperature: float = DEFAULT_TEMPERATURE
    seed: int = 0
    greedy: list[str | None] | None = None   # (Q,) the greedy answer (task models only)
    greedy_cost: np.ndarray | None = None    # (Q,) cost of that one greedy decode
    greedy_tokens: np.ndarray | None = None  # (Q,) completion tokens of that greedy decode
    texts: list[list[str]] = field(default_factory=list, repr=False)  # (Q, K) raw sampled texts (first few)

    @property
    def k(self) -> int:
        """Samples per query."""
        return len(self.answers[0]) if self.answers else 0


def check_k(k) -> int:
    """K as an int >= 1, or a ValueError saying what K is."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"K (samples per model and query) must be a whole number >= 1, got {k!r}")
    return int(k)


def check_temperature(t) -> float:
    """A sampling temperature > 0 (sampling needs one: at 0 the K samples would all be the greedy answer)."""
    if isinstance(t, bool) or not isinstance(t, (int, float, np.integer, np.floating)) or not 0 < t < float("inf"):
        raise ValueError(f"temperature must be a finite number > 0 for sampled answers (0 would repeat the greedy answer K "
                         f"times), got {t!r}")
    return float(t)


def answer_line(text: str) -> str | None:
    """The task world's default extractor: the value on the final `#answer` line, as a string (None if absent)."""
    ans = T.parse_solution(text)[1]
    return None if ans is None else str(ans)


def seed_of(*parts) -> int:
    """A 31-bit seed derived from any JSON-able parts (stable across runs and machines)."""
    return int(hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def left_pad(ids: Sequence[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ids (B, T) and their attention mask (torch's pad_sequence, padding on the left)."""
    from torch.nn.utils.rnn import pad_sequence

    seqs = [torch.tensor(e, dtype=torch.long) for e in ids]
    x = pad_sequence(seqs, batch_first=True, padding_value=PAD, padding_side="left")
    mask = pad_sequence([torch.ones_like(t) for t in seqs], batch_first=True, padding_value=0, padding_side="left")
    return x, mask


@torch.no_grad()
def sample_texts(model, prompts: Sequence[str], k: int, temperature: float = DEFAULT_TEMPERATURE, seed: int = 0,
                 max_new_tokens: int = 80, batch_queries: int = 128, name: str = "model"
                 ) -> tuple[list[list[str]], np.ndarray, np.ndarray]:
    """K seeded temperature samples of each prompt from a task model: texts (Q, K), tokens (Q, K), FLOPs (Q, K).

    Each batch holds `batch_queries` prompts repeated K times (one `model.generate` call).
    """
    k, temperature = check_k(k), check_temperature(temperature)
    shape = shape_of(model)
    dev = next(model.parameters()).device
    texts: list[list[str]] = []
    toks = np.zeros((len(prompts), k), dtype=np.int64)
    flops = np.zeros((len(prompts), k), dtype=np.float64)
    for b0 in range(0, len(prompts), batch_queries):
        chunk = prompts[b0:b0 + batch_queries]
        enc = [encode(p) for p in chunk for _ in range(k)]
        x, mask = left_pad(enc)
        torch.manual_seed(seed_of(seed, name, b0, batch_queries))
        out = model.generate(input_ids=x.to(dev), attention_mask=mask.to(dev), max_new_tokens=max_new_tokens,
                             min_new_tokens=0, do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
                             num_beams=1, eos_token_id=[EOS], pad_token_id=PAD)
        new = out[:, x.shape[1]:].tolist()
        for i in range(len(chunk)):
            row = []
            for j in range(k):
                seq = new[i * k + j]
                n = next((t + 1 for t, v in enumerate(seq) if v == EOS), len(seq))
                row.append(decode(seq[:n]))
                toks[b0 + i, j] = n
                flops[b0 + i, j] = generation_flops(shape, len(enc[i * k + j]), n)
            texts.append(row)
    return texts, toks, flops


def sample_task_model(name: str, problems: Sequence[T.Problem], k: int = DEFAULT_K,
                      temperature: float = DEFAULT_TEMPERATURE, seed: int = 0, greedy: bool = True,
                      model=None, keep_texts: int = 20) -> ModelSamples:
    """K sampled `#answer`s per problem from a committed task model (plus its greedy answer), with FLOPs."""
    from ..taskworld import load_model, solve

    model = model if model is not None else load_model(name)
    prompts = [prompt_of(p) for p in problems]
    longest = max([80] + [len(p.solution) + 16 for p in problems])  # room for the longest gold solution
    texts, toks, flops = sample_texts(model, prompts, k, temperature, seed, max_new_tokens=longest, name=name)
    s = ModelSamples(name, [[answer_line(t) for t in row] for row in texts], toks.sum(1), flops.sum(1),
                     "FLOPs", temperature, seed, texts=texts[:keep_texts])
    if greedy:
        gens = solve(model, problems)
        s.greedy = [answer_line(g.text) for g in gens]
        s.greedy_cost = np.array([g.flops for g in gens], dtype=np.float64)
        s.greedy_tokens = np.array([len(g.tokens) for g in gens], dtype=np.int64)
    return s


def sample_llm(lm, prompts: Sequence, k: int = DEFAULT_K, extract: Callable[[str], str | None] = answer_line,
               temperature: float = DEFAULT_TEMPERATURE, seed: int = 0, max_new_tokens: int = 128,
               stop: Sequence[str] | None = None, prices: Prices | None = None, keep_texts: int = 20
               ) -> ModelSamples:
    """K sampled answers per prompt from any `nblib.llm` LanguageModel; cost in USD under `prices`, else tokens.

    Sample k of every prompt uses seed `seed + k`; `extract(text)` turns a completion into an answer
    (None when it has none). Cost of a query = its K samples' prompt + completion tokens (or their price).
    """
    from ..cost import CostEntry

    k, temperature = check_k(k), check_temperature(temperature)
    if not callable(extract):
        raise TypeError(f"extract must be a function text -> answer (or None), got {type(extract).__name__}")
    if len(prompts) == 0:
        raise ValueError("no prompts to sample: pass at least one")
    q = len(prompts)
    answers: list[list[str | None]] = [[None] * k for _ in range(q)]
    texts: list[list[str]] = [[""] * k for _ in range(q)]
    toks = np.zeros((q, k), dtype=np.int64)
    cost = np.zeros((q, k), dtype=np.float64)
    for j in range(k):
        gens = lm.generate_batch(list(prompts), max_new_tokens=max_new_tokens, temperature=temperature,
                                 stop=stop, seed=seed + j)
        if len(gens) != q:
            raise RuntimeError(f"{getattr(lm, 'name', lm)} returned {len(gens)} generations for {q} prompts")
        for i, g in enumerate(gens):
            a = extract(g.text)
            answers[i][j] = None if a is None else str(a)
            texts[i][j] = g.text
            toks[i, j] = g.usage.completion_tokens
            if prices is not None:
                usd = CostEntry("x", prompt_tokens=g.usage.prompt_tokens,
                                completion_tokens=g.usage.completion_tokens,
                                wall_ms=g.usage.wall_s * 1e3).usd(prices)
                cost[i, j] = usd or 0.0
            else:
                cost[i, j] = g.usage.prompt_tokens + g.usage.completion_tokens
    unit = "USD" if prices is not None else "tokens"
    return ModelSamples(str(getattr(lm, "name", "lm")), answers, toks.sum(1), cost.sum(1), unit, temperature, seed,
                        texts=texts[:keep_texts])
