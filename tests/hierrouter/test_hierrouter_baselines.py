"""Baselines on the step table's arrays: models alone, mixing line, random at matched cost, oracle, logistic router."""
from __future__ import annotations

import numpy as np
import pytest

from nblib import hierrouter as H
from nblib.hierrouter import baselines as B


@pytest.fixture
def A(scripted_cache, mixed):
    return H.arrays(scripted_cache, mixed)


def test_each_model_alone(A):
    rows, walks = B.single_models(A, 100.0)
    acc = {r["method"]: r["accuracy"] for r in rows}
    assert acc == {"good only": 1.0, "bad only": 0.0, "mid only": 0.0}
    assert (walks["bad"].hops == 1).all()  # a wrong line ends the episode


def test_the_oracle_takes_the_cheapest_right_route_and_beats_every_route(A, rng):
    unit = 100.0
    row, w = B.oracle(A, unit, 0.0)
    assert row["accuracy"] == 1.0
    assert (w.actions[:, 0] == 2).all()  # 'mid' is right at hop 0 and cheaper than 'good'
    for lam in (0.0, 0.5, 50.0):
        _, o = B.oracle(A, unit, lam)
        for _ in range(20):
            other = H.episodes.fixed(A, rng.integers(0, 3, size=(len(A.problems), A.horizon)))
            assert (o.quality - lam * o.flops / unit >= other.quality - lam * other.flops / unit - 1e-12).all()
    _, dear = B.oracle(A, unit, 1e6)
    assert dear.quality.sum() == 0  # so dear that failing at once is best


def test_the_mixing_line_joins_tiny_only_and_large_only():
    tiny, large = {"cost": 0.05, "accuracy": 0.6}, {"cost": 1.0, "accuracy": 0.95}
    assert B.mixing_line(tiny, large, 0.05) == pytest.approx(0.6)
    assert B.mixing_line(tiny, large, 1.0) == pytest.approx(0.95)
    assert B.mixing_line(tiny, large, 0.525) == pytest.approx(0.775)


def test_random_routing_matches_the_cost_asked_for(A):
    _, walks = B.single_models(A, 1.0)
    lo, hi = walks["bad"].flops.mean(), walks["good"].flops.mean()
    target = (lo + hi) / 2
    row = B.random_at_cost(A, target, 1.0, dear=0)
    assert row["cost"] == pytest.approx(target, rel=0.05) and 0 < row["p_dear"] < 1


def test_the_logistic_router_reads_the_kind_and_pays_for_its_encoder(A):
    lr = B.LogisticRouter(H.Features(raw_dim=4)).fit(A)
    w = lr.run(A, 0.5)
    assert w.router_flops.min() > 0
    assert (w.quality >= 0).all() and w.hops.max() <= A.horizon
