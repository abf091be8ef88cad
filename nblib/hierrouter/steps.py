"""The cached part of the step table: the gold-path contexts and every pool model's output on them.

`StepCache` holds pool outputs per (context, model) and the encoder's view per context; `expand` fills it for
the gold-path contexts of a set of problems (the problem line plus a prefix of its gold solution). This module
is the step table's cache key (with the pool, the encoders and the task world): keep it small and stable.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..taskworld import problems as T
from .pool import StepModel, StepOutput, call_cost


def prompt(problem: T.Problem) -> str:
    """The context of hop 0: the problem line and a newline (what the task models are trained to continue)."""
    return problem.text + "\n"


def gold_context(problem: T.Problem, hop: int) -> str:
    """The context of hop `hop` on the gold path: the problem line and its first `hop` gold step lines."""
    return prompt(problem) + "".join(line + "\n" for line in problem.step_lines[:hop])


class StepCache:
    """Pool outputs per (context, model) and embeddings per context; runs a model only on a miss."""

    def __init__(self, pool: Sequence[StepModel], encoder, steps: dict | None = None,
                 embeddings: dict | None = None):
        self.pool = list(pool)
        self.names = [m.name for m in self.pool]
        self.models = {m.name: m for m in self.pool}
        self.encoder = encoder
        self.steps: dict[tuple[str, str], StepOutput] = dict(steps or {})
        self.embeddings: dict[str, np.ndarray] = dict(embeddings or {})
        self.hits = self.misses = 0

    @property
    def dim(self) -> int:
        """Width of the encoder's view of a context."""
        return int(self.encoder.dim)

    def step(self, context: str, name: str) -> StepOutput:
        """The line `name` writes after `context` (cached; the model runs on a miss)."""
        key = (context, name)
        out = self.steps.get(key)
        if out is None:
            self.misses += 1
            out = self.models[name].step_batch([context])[0]
            self.steps[key] = out
        else:
            self.hits += 1
        return out

    def cost(self, name: str, out: StepOutput) -> float:
        """FLOPs of that call (FLOPs per token x tokens read and written)."""
        return call_cost(self.models[name], out)

    def embed(self, context: str) -> np.ndarray:
        """The encoder's view of a context (cached)."""
        e = self.embeddings.get(context)
        if e is None:
            e = self.encoder.encode([context])[0]
            self.embeddings[context] = e
        return e

    def expand(self, problems: Sequence[T.Problem], show_progress: bool = False) -> "StepCache":
        """Fill the table with every model's output and the view of every gold-path context (batched per model)."""
        from .. import progress

        contexts = sorted({gold_context(p, k) for p in problems for k in range(p.n_steps)})
        todo = [c for c in contexts if c not in self.embeddings]
        bar = progress(total=len(self.pool) + 1, enabled=show_progress, desc="step table")
        if todo:
            for c, e in zip(todo, self.encoder.encode(todo), strict=True):
                self.embeddings[c] = e
        bar.update(1)
        for m in self.pool:
            miss = [c for c in contexts if (c, m.name) not in self.steps]
            for c, out in zip(miss, m.step_batch(miss), strict=True):
                self.steps[(c, m.name)] = out
            bar.update(1)
        bar.close()
        return self

    def with_encoder(self, encoder) -> "StepCache":
        """The same model outputs seen through another encoder (e.g. the hand-feature ablation)."""
        return StepCache(self.pool, encoder, self.steps)

    def tables(self) -> dict:
        """The plain data of the table (for the cache): steps and embeddings."""
        return {"steps": {k: (v.line, v.tokens_in, v.tokens_out) for k, v in self.steps.items()},
                "embeddings": self.embeddings}
