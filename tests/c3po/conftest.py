"""Fixtures of the C3PO tests: synthetic cascade traces (no model needed) with continuous costs, and a scripted LM."""
from __future__ import annotations

import numpy as np
import pytest

from nblib import c3po


def synthetic_traces(q: int = 600, k: int = 5, seed: int = 0, labels: bool = True) -> c3po.CascadeTraces:
    """Three models (cheap, mid, strong) on q queries: skill rises with size, vote share tracks correctness,
    costs are continuous (per-query length x per-model price) so conformal quantiles have no ties."""
    rng = np.random.default_rng(seed)
    skill = np.array([0.35, 0.7, 0.97])
    difficulty = rng.random(q)
    length = rng.lognormal(0.0, 0.35, q)                       # a query's length drives every model's cost
    price = np.array([1.0, 5.0, 14.0])
    samples = []
    gold = rng.integers(0, 50, q)
    for m in range(3):
        p_right = np.clip(skill[m] + 0.4 * (0.5 - difficulty), 0.02, 0.995)
        answers = []
        for i in range(q):
            row = []
            for _ in range(k):
                r = rng.random()
                if r < p_right[i]:
                    row.append(str(gold[i]))
                elif r < p_right[i] + 0.05:
                    row.append(None)
                else:
                    row.append(str(rng.integers(50, 53)))
            answers.append(row)
        cost = k * price[m] * length * rng.lognormal(0.0, 0.05, q)
        samples.append(c3po.sampling.ModelSamples(["cheap", "mid", "strong"][m], answers,
                                                  np.round(cost * 3).astype(int), cost, "FLOPs"))
    return c3po.from_samples(samples, gold=[str(g) for g in gold] if labels else None,
                             queries=[f"q{i}" for i in range(q)])


@pytest.fixture(scope="session")
def traces():
    """600 synthetic queries, 3 models, K = 5, with labels."""
    return synthetic_traces()


@pytest.fixture(scope="session")
def make_traces():
    """synthetic_traces(q, k, seed, labels)."""
    return synthetic_traces
