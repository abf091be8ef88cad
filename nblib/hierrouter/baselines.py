"""Baselines on the step table: each model alone, random routing, greedy by kind, best fixed sequence, oracle.

All of them walk the same cached table as the environment (`env.sequence_cost`), so they read the same
model outputs and the same costs. `sequence_matrix` runs every one of the M^L model sequences on every
problem once; random routing (its exact expectation), the best fixed sequence and the per-problem oracle
are then array operations on it.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..taskworld import problems as T
from .env import sequence_cost
from .table import StepCache, check_lam, prompt


@dataclass
class SequenceMatrix:
    """Quality and FLOPs of every model sequence on every problem: arrays (problems, sequences)."""

    sequences: list[tuple[str, ...]]
    quality: np.ndarray
    flops: np.ndarray

    def returns(self, lam: float, cost_unit: float) -> np.ndarray:
        """quality - lam x flops / cost_unit, per problem and sequence."""
        return self.quality - check_lam(lam) * self.flops / cost_unit


def sequence_matrix(cache: StepCache, problems: Sequence[T.Problem], horizon: int) -> SequenceMatrix:
    """Run all M^horizon model sequences on every problem (table look-ups; the models run on misses)."""
    seqs = list(itertools.product(cache.names, repeat=horizon))
    q = np.zeros((len(problems), len(seqs)))
    c = np.zeros((len(problems), len(seqs)))
    for i, p in enumerate(problems):
        for j, s in enumerate(seqs):
            q[i, j], c[i, j], _ = sequence_cost(cache, p, s)
    return SequenceMatrix(seqs, q, c)


def point(name: str, quality: np.ndarray, flops: np.ndarray, cost_unit: float, lam: float, **extra) -> dict:
    """One baseline's row: mean quality (accuracy), mean FLOPs, cost in units, mean return."""
    q, c = float(np.mean(quality)), float(np.mean(flops))
    return {"method": name, "lam": lam, "accuracy": q, "cost_flops": c, "cost": c / cost_unit,
            "return": q - lam * c / cost_unit, **extra}


def single_models(mat: SequenceMatrix, cost_unit: float, lam: float = 0.0) -> list[dict]:
    """Each pool model alone at every hop."""
    rows = []
    for j, s in enumerate(mat.sequences):
        if len(set(s)) == 1:
            rows.append(point(f"{s[0]} only", mat.quality[:, j], mat.flops[:, j], cost_unit, lam, sequence=s))
    return rows


def random_routing(mat: SequenceMatrix, cost_unit: float, lam: float = 0.0, weights: dict | None = None,
                   name: str = "random") -> dict:
    """Routing each hop at random (uniform, or with per-model `weights`): the exact expectation."""
    names = sorted({m for s in mat.sequences for m in s}, key=[m for s in mat.sequences for m in s].index)
    w = np.array([1.0 if weights is None else float(weights.get(m, 0.0)) for m in names])
    w = w / w.sum()
    pw = np.array([np.prod([w[names.index(m)] for m in s]) for s in mat.sequences])
    return point(name, mat.quality @ pw, mat.flops @ pw, cost_unit, lam)


def random_family(mat: SequenceMatrix, cost_unit: float, expensive: str, shares=(0.0, 0.25, 0.5, 0.75, 0.9)) -> list[dict]:
    """Random routing that picks `expensive` with probability p and the others uniformly: one row per p."""
    names = list(dict.fromkeys(m for s in mat.sequences for m in s))
    rest = [m for m in names if m != expensive]
    rows = [random_routing(mat, cost_unit)]
    for p in shares:
        wts = {m: (1 - p) / len(rest) for m in rest} | {expensive: p}
        rows.append(random_routing(mat, cost_unit, weights=wts, name=f"random, p({expensive})={p:g}"))
    return rows


def kind_accuracy(cache: StepCache, problems: Sequence[T.Problem]) -> dict[str, dict[str, float]]:
    """Each model's step accuracy per kind on the problems' gold contexts: {model: {kind: share right}}."""
    out: dict[str, dict[str, list]] = {m: {k: [] for k in T.OPS} for m in cache.names}
    for p in problems:
        lines = p.step_lines
        for i, k in enumerate(p.kinds):
            ctx = prompt(p) + "".join(line + "\n" for line in lines[:i])
            for m in cache.names:
                out[m][k].append(cache.step(ctx, m).line == lines[i])
    return {m: {k: float(np.mean(v)) for k, v in d.items() if v} for m, d in out.items()}


def greedy_by_kind(cache: StepCache, train: Sequence[T.Problem], test: Sequence[T.Problem], cost_unit: float,
                   lam: float = 0.0, exclude: Sequence[str] = (), name: str = "greedy by kind") -> dict:
    """Per hop, the model with the best measured accuracy on the next step's kind (read from the problem).

    `exclude` leaves models out (e.g. the large one: the best the small models can do when told the kind).
    """
    acc = kind_accuracy(cache, train)
    fpt = {m.name: m.flops_per_token for m in cache.pool}
    names = [m for m in cache.names if m not in exclude]
    best = {k: max(names, key=lambda m: (acc[m].get(k, 0.0), -fpt[m])) for k in T.OPS}
    res = [sequence_cost(cache, p, [best[k] for k in p.kinds]) for p in test]
    return point(name, np.array([r[0] for r in res]), np.array([r[1] for r in res]), cost_unit, lam,
                 choice=best)


def best_fixed(train_mat: SequenceMatrix, test_mat: SequenceMatrix, cost_unit: float, lam: float) -> dict:
    """The one sequence with the best mean return on the training split, evaluated on the test split."""
    j = int(np.argmax(train_mat.returns(lam, cost_unit).mean(0)))
    if train_mat.sequences != test_mat.sequences:
        raise ValueError("the train and test matrices must enumerate the same sequences (same pool and horizon)")
    return point("best fixed sequence", test_mat.quality[:, j], test_mat.flops[:, j], cost_unit, lam,
                 sequence=train_mat.sequences[j])


def oracle(mat: SequenceMatrix, cost_unit: float, lam: float) -> dict:
    """Per problem, the sequence with the best return (brute force over all M^L sequences; ties: cheaper)."""
    r = mat.returns(lam, cost_unit) - 1e-12 * mat.flops  # ties go to the cheaper sequence
    j = np.argmax(r, axis=1)
    rows = np.arange(len(j))
    return point("oracle", mat.quality[rows, j], mat.flops[rows, j], cost_unit, lam)
