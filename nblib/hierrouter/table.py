"""The step table: every pool model's output per (context, model) and the router's view per context, cached.

PPO's rollouts revisit the same contexts over and over, so a model runs at most once per (context, model):
`StepCache.step` looks the output up and calls the model only on a miss. `StepCache.expand` fills the
table ahead of training, hop by hop over all distinct contexts every model sequence reaches (batched per
model), so PPO then runs on look-ups alone. `step_table` builds one for a task-world split and keeps it in
the user cache (nblib.cache), keyed by the problems, the sha256 of the pool's and the encoder's weights, and the source of this code and every
nblib module it reaches (taskworld.generation included).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..taskworld import problems as T
from .pool import StepModel, StepOutput, call_cost


def prompt(problem: T.Problem) -> str:
    """The context of hop 0: the problem line and a newline (what the task models are trained to continue)."""
    return problem.text + "\n"


def final_value(line: str) -> int | None:
    """The value a final line states: after '=' of a step line, or after '#' of an answer line."""
    v = T.step_result(line)
    if v is None:
        m = T.ANSWER_RE.match(line.strip())
        v = int(m.group(1)) if m else None
    return v


def quality(problem: T.Problem, lines: Sequence[str]) -> float:
    """Final-answer quality: 1.0 when the last written line states the problem's answer, else 0.0."""
    return float(len(lines) > 0 and final_value(lines[-1]) == problem.answer)


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
        """Width of the router's view of a context."""
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
        """The router's view of a context (cached)."""
        e = self.embeddings.get(context)
        if e is None:
            e = self.encoder.encode([context])[0]
            self.embeddings[context] = e
        return e

    def expand(self, problems: Sequence[T.Problem], horizon: int, show_progress: bool = False) -> "StepCache":
        """Fill the table with every context any model sequence reaches in `horizon` hops (batched per model)."""
        from .. import progress

        frontier = sorted({prompt(p) for p in problems})
        bar = progress(total=horizon * len(self.pool), enabled=show_progress, desc="step table")
        for _ in range(horizon):
            todo = [c for c in frontier if c not in self.embeddings]
            if todo:
                for c, e in zip(todo, self.encoder.encode(todo), strict=True):
                    self.embeddings[c] = e
            nxt = set()
            for m in self.pool:
                miss = [c for c in frontier if (c, m.name) not in self.steps]
                for c, out in zip(miss, m.step_batch(miss), strict=True):
                    self.steps[(c, m.name)] = out
                nxt.update(c + self.steps[(c, m.name)].line + "\n" for c in frontier)
                bar.update(1)
            frontier = sorted(nxt)
        bar.close()
        return self

    def tables(self) -> dict:
        """The plain data of the table (for the cache): steps and embeddings."""
        return {"steps": {k: (v.line, v.tokens_in, v.tokens_out) for k, v in self.steps.items()},
                "embeddings": self.embeddings}


def checkpoint_stamp(name: str) -> str | None:
    """The sha256 a task model's train.json records (None for a model that is not a task model)."""
    from ..taskworld import models

    try:
        return models.model_info(name).get("sha256")
    except models.UnknownModel:
        return None


def model_fingerprint(m) -> str:
    """What a pool model or encoder computes with, for cache keys and policy checks: its weights' sha256.

    A task model or encoder with weights: `cache.weights_fingerprint` of the loaded module; an LLM pool model:
    `llm.fingerprint` (weights, or server URL + model id); a scripted model: its function's source; an
    encoder without weights (the hand features): its name.
    """
    from .. import cache, llm

    lm = getattr(m, "lm", None)
    if lm is not None:
        return llm.fingerprint(lm)
    module = getattr(m, "model", None)
    if module is not None and hasattr(module, "state_dict"):
        return "sha256:" + cache.weights_fingerprint(module)
    fn = getattr(m, "fn", None)
    if fn is not None:
        try:
            return "code:" + cache.code_version(fn)
        except TypeError:
            return f"object:{type(fn).__name__}:{id(fn)}"   # no source (a builtin): never shared across runs
    return "name:" + str(getattr(m, "name", type(m).__name__))


def step_table(split: str = "train", n: int = 500, horizon: int = 3, pool: Sequence[str] | None = None,
               encoder: str = "hidden:tiny", seed: int = 0, verbose: bool = False,
               show_progress: bool = False) -> tuple[list[T.Problem], StepCache]:
    """Problems of one split with `horizon` steps and their filled StepCache (cached in the user cache)."""
    from ..cache import cached
    from . import encoders as E
    from .pool import DEFAULT_POOL, make_pool

    check_horizon(horizon)
    names = list(pool or DEFAULT_POOL)
    models = make_pool(names)
    enc = E.make_encoder(encoder)
    probs = T.problems(split, n, seed, n_steps=horizon)
    # keyed by what the models compute with (their weights' sha256), not by their names
    config = {"split": split, "n": n, "horizon": horizon, "seed": seed, "pool": [m.name for m in models],
              "weights": [model_fingerprint(m) for m in models], "encoder": encoder,
              "encoder_weights": model_fingerprint(enc)}

    def compute():
        return StepCache(models, enc).expand(probs, horizon, show_progress).tables()

    from . import pool as pool_mod

    code = (StepCache, prompt, pool_mod, E, T.problems, T.sample_problem)  # + every nblib module they import
    data = cached("hierrouter_table", config, compute, code=code, verbose=verbose)
    steps = {k: StepOutput(*v) for k, v in data["steps"].items()}
    return probs, StepCache(models, enc, steps, data["embeddings"])


def check_horizon(horizon) -> int:
    """The horizon as an int >= 1, or a ValueError saying what to pass."""
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"horizon must be a whole number of hops >= 1 (one step line per hop), got {horizon!r}")
    return int(horizon)


def check_lam(lam) -> float:
    """The cost weight as a float >= 0, or a ValueError saying what to pass."""
    try:
        v = float(lam)
    except (TypeError, ValueError):
        raise ValueError(f"lam (the cost weight) must be a number >= 0, got {lam!r}") from None
    if not v >= 0 or v == float("inf"):
        raise ValueError(f"lam (the cost weight) must be a finite number >= 0 (0 = ignore cost), got {lam!r}")
    return v
