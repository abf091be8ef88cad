"""Synthetic pools: scripted step models over task-world problems, for tables whose best route is known.

`right_step` writes the next step computed right from the last written total (a perfect model),
`wrong_step` an off-by-one step, `right_at(hops)` is right only at those hop indices. With them a pool
whose one sequence dominates (PPO must find it) or whose cheapest model is always wrong is a few lines.
"""
from __future__ import annotations

from typing import Callable, Iterable

from ..taskworld import problems as T
from .pool import ScriptedStepModel


def written(context: str) -> tuple[T.Problem, list[str]]:
    """The problem and the lines written so far, read back from a context text."""
    first, *lines = [ln for ln in context.split("\n") if ln.strip()]
    return T.parse_problem(first), lines


def right_step(context: str) -> str:
    """The next step computed right from the last written total."""
    p, lines = written(context)
    i = len(lines)
    if i >= p.n_steps:
        return f"{T.ANSWER}{T.step_result(lines[-1]) if lines else p.start}"
    prev = p.start if i == 0 else (T.step_result(lines[-1]) or 0)
    op, x = p.ops[i]
    return f"{prev}{op}{x}={T.apply_op(prev, op, x)}"


def wrong_step(context: str) -> str:
    """A well-formed step whose result is off by one."""
    a, b = right_step(context).split("=")
    return f"{a}={int(b) + 1}"


def right_at(hops: Iterable[int]) -> Callable[[str], str]:
    """A script that writes the right step only at the given hop indices (0-based), else an off-by-one step."""
    hops = set(hops)

    def fn(context: str) -> str:
        return right_step(context) if len(written(context)[1]) in hops else wrong_step(context)

    return fn


def scripted(name: str, hops: Iterable[int] | None, flops_per_token: float) -> ScriptedStepModel:
    """A scripted pool model right at `hops` (None: always right; empty: never)."""
    fn = right_step if hops is None else right_at(hops)
    return ScriptedStepModel(name, fn, flops_per_token)
