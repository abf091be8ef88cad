"""The step table: every pool model's output on every gold-path context, the router's view of it, cached.

A problem of L steps is solved in L hops, one step line per hop. A wrong step ends the solution: its final
answer is wrong whatever follows (the task world's steps carry the running total, so a wrong line carries
its error to the end), so an episode stops at its first wrong line with quality 0 and the later hops are
neither run nor charged. Every context an episode reaches is then the problem line plus a prefix of its gold
solution, L contexts per problem, and the table holds L x pool outputs per problem: thousands of training
problems fit, and PPO runs on look-ups alone.

`StepCache.step` looks an output up and calls the model only on a miss; `StepCache.expand` fills the table
ahead of training (batched per model). `step_table` builds one for a task-world split of the v2 mix and keeps
it in the user cache (nblib.cache), keyed by the problems, the sha256 of the pool's and the encoder's weights
and the source of this code and every nblib module it reaches. `Arrays` holds the same table as numpy arrays
(problems x hops x models) for the baselines and batched evaluation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .. import checks
from ..taskworld import problems as T
from .pool import StepOutput
from .steps import StepCache, gold_context, prompt


def final_value(line: str) -> int | None:
    """The value a final line states: after '=' of a step line, or after '#' of an answer line."""
    v = T.step_result(line)
    if v is None:
        m = T.ANSWER_RE.match(line.strip())
        v = int(m.group(1)) if m else None
    return v


def step_right(problem: T.Problem, hop: int, line: str) -> bool:
    """Whether the line written at `hop` keeps the solution right: the gold line, or at the last hop the answer."""
    if line.strip() == problem.step_lines[hop]:
        return True
    return hop == problem.n_steps - 1 and final_value(line) == problem.answer


def quality(problem: T.Problem, lines: Sequence[str]) -> float:
    """Final-answer quality: 1.0 when all `n_steps` lines were written and the last states the answer, else 0.0."""
    return float(len(lines) == problem.n_steps and final_value(lines[-1]) == problem.answer)


@dataclass
class Arrays:
    """The gold-path table as arrays (problems x hops x models); padded hops (k >= n_steps) hold zeros."""

    problems: list
    names: list
    n_steps: np.ndarray        # (n,) hops per problem
    right: np.ndarray          # (n, H, M) bool: the model's line keeps the solution right
    flops: np.ndarray          # (n, H, M) FLOPs of the call
    tokens_in: np.ndarray      # (n, H, M)
    tokens_out: np.ndarray     # (n, H, M)
    router_flops: np.ndarray   # (n, H) FLOPs of the router's encoder reading the new tokens at that hop
    router_tokens: np.ndarray  # (n, H)
    view: np.ndarray           # (n, H, dim) the encoder's view of the context at that hop
    kinds: np.ndarray          # (n, H) the step's kind ('' past the end)

    @property
    def horizon(self) -> int:
        """Hops of the longest problem."""
        return int(self.right.shape[1])


def router_new_tokens(problem: T.Problem, hop: int) -> int:
    """Tokens the router's encoder reads at `hop` (new ones only, as with a KV cache): the prompt, then a line."""
    if hop == 0:
        return len(prompt(problem)) + 1          # characters are tokens in the task world, plus <bos>
    return len(problem.step_lines[hop - 1]) + 1  # the line written at the hop before, with its newline


def arrays(cache: StepCache, problems: Sequence[T.Problem], horizon: int | None = None) -> Arrays:
    """The table of these problems as arrays (the models run on any miss)."""
    problems = list(problems)
    H = check_horizon(horizon, problems) if horizon is not None else max(p.n_steps for p in problems)
    n, M = len(problems), len(cache.names)
    right = np.zeros((n, H, M), bool)
    flops, tin, tout = (np.zeros((n, H, M)) for _ in range(3))
    rfl, rtok = np.zeros((n, H)), np.zeros((n, H))
    view = np.zeros((n, H, cache.dim), np.float32)
    kinds = np.full((n, H), "", dtype="<U1")
    fpt = float(getattr(cache.encoder, "flops_per_token", 0.0))
    for i, p in enumerate(problems):
        for k in range(p.n_steps):
            ctx = gold_context(p, k)
            view[i, k] = cache.embed(ctx)
            kinds[i, k] = p.kinds[k]
            rtok[i, k] = router_new_tokens(p, k)
            rfl[i, k] = fpt * rtok[i, k]
            for j, m in enumerate(cache.names):
                out = cache.step(ctx, m)
                right[i, k, j] = step_right(p, k, out.line)
                flops[i, k, j] = cache.cost(m, out)
                tin[i, k, j], tout[i, k, j] = out.tokens_in, out.tokens_out
    return Arrays(problems, list(cache.names), np.array([p.n_steps for p in problems]), right, flops, tin, tout,
                  rfl, rtok, view, kinds)


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


def step_table(split: str = "train", n: int = 500, pool: Sequence[str] | None = None,
               encoder: str = "hidden:v2-tiny", seed: int = 0, horizon: int | None = None,
               verbose: bool = False, show_progress: bool = False) -> tuple[list[T.Problem], StepCache]:
    """`n` problems of one split of the v2 mix (2 to 8 steps) and their filled StepCache (cached in the user cache).

    `horizon` (default: the longest problem's steps) is the most hops an episode may take; a problem longer
    than it, or a horizon longer than every problem, is refused.
    """
    from ..cache import cached
    from . import encoders as E
    from .pool import DEFAULT_POOL, make_pool

    n = checks.whole("n", n, low=1)
    names = list(pool or DEFAULT_POOL)
    models = make_pool(names)
    enc = E.make_encoder(encoder)
    probs = T.problems(split, n, seed, T.V2_MIX)
    if horizon is not None:
        check_horizon(horizon, probs)
    # keyed by what the models compute with (their weights' sha256), not by their names
    config = {"split": split, "n": n, "mix": repr(T.V2_MIX), "seed": seed, "pool": [m.name for m in models],
              "weights": [model_fingerprint(m) for m in models], "encoder": encoder,
              "encoder_weights": model_fingerprint(enc)}

    def compute():
        return StepCache(models, enc).expand(probs, show_progress).tables()

    from . import pool as pool_mod

    from . import steps as steps_mod

    code = (steps_mod, pool_mod, E, T.problems, T.sample_problem)  # + every nblib module they import
    data = cached("hierrouter_table_v2", config, compute, code=code, verbose=verbose)
    steps = {k: StepOutput(*v) for k, v in data["steps"].items()}
    return probs, StepCache(models, enc, steps, data["embeddings"])


def check_horizon(horizon, problems: Sequence[T.Problem] = ()) -> int:
    """The horizon as an int >= 1 that fits the problems: none longer, and not longer than every one of them."""
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"horizon must be a whole number of hops >= 1 (one step line per hop), got {horizon!r}")
    h = int(horizon)
    if problems:
        longest = max(p.n_steps for p in problems)
        if longest > h:
            raise ValueError(f"horizon {h} is shorter than a {longest}-step problem: each hop writes one step, so "
                             f"the horizon must be at least the longest problem's steps ({longest})")
        if h > longest:
            raise ValueError(f"horizon {h} is longer than any problem (the longest has {longest} steps): no episode "
                             f"reaches hop {longest + 1}; pass horizon={longest} (or leave it out)")
    return h


def check_lam(lam) -> float:
    """The cost weight as a float >= 0, or a ValueError saying what to pass."""
    if isinstance(lam, bool) or not isinstance(lam, (int, float, np.integer, np.floating)):
        raise ValueError(f"lam (the cost weight) must be a number >= 0, got {lam!r}")
    v = float(lam)
    if not v >= 0 or v == float("inf"):
        raise ValueError(f"lam (the cost weight) must be a finite number >= 0 (0 = ignore cost), got {lam!r}")
    return v


def check_cost_unit(cost_unit) -> float:
    """The FLOPs of one cost unit as a finite float > 0, or a BadArgument saying what to pass."""
    return checks.number("cost_unit", cost_unit, low=0, low_open=True,
                         hint="FLOPs per cost unit, e.g. the large model's mean episode FLOPs")
