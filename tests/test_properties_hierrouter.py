"""Property tests (hypothesis) for nblib.hierrouter's pure entry points on small synthetic step tables (no model, no
PPO): the cost weight and horizon checks, the final-value reader, the mixing line, fixed routes, the oracle and the
frontier area. Any input gives a valid result or a ValueError naming the argument (issue 23)."""
from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from nblib import checks
from nblib.hierrouter import baselines as B
from nblib.hierrouter import bench, episodes, table
from nblib.taskworld import problems as T
from property_helpers import FAST, named

TABLES = settings(max_examples=40, deadline=None)    # each example walks a synthetic table
ANY = st.one_of(st.none(), st.booleans(), st.integers(-5, 300), st.floats(allow_nan=True, allow_infinity=True),
                st.text(max_size=3), st.lists(st.integers(), max_size=2), st.integers(-3, 50).map(np.int64),
                st.floats(-1, 2).map(np.float32))
PROBLEMS = [p for n in (2, 3, 4) for p in T.problems("train", 2, seed=5, n_steps=n)]


@st.composite
def tables(draw, max_n: int = 5, max_h: int = 4, max_m: int = 3) -> table.Arrays:
    """A step table of n problems x H hops x M models with random outcomes and positive FLOPs."""
    n, H, M = draw(st.integers(1, max_n)), draw(st.integers(1, max_h)), draw(st.integers(2, max_m))
    steps = np.array(draw(st.lists(st.integers(1, H), min_size=n, max_size=n)))
    steps[0] = H                                                  # the longest problem fills the horizon
    right = np.array(draw(st.lists(st.booleans(), min_size=n * H * M, max_size=n * H * M))).reshape(n, H, M)
    flops = np.array(draw(st.lists(st.floats(0.5, 100), min_size=n * H * M, max_size=n * H * M))).reshape(n, H, M)
    pad = np.arange(H)[None, :] >= steps[:, None]
    right[pad], flops[pad] = False, 0.0
    return table.Arrays(problems=list(range(n)), names=[f"m{j}" for j in range(M)], n_steps=steps, right=right,
                        flops=flops, tokens_in=np.ones((n, H, M)), tokens_out=np.ones((n, H, M)),
                        router_flops=np.where(pad, 0.0, 2.0), router_tokens=np.ones((n, H)),
                        view=np.zeros((n, H, 1)), kinds=np.where(pad, "", "add"))


LAM = st.one_of(st.floats(0, 5), st.floats(allow_nan=True, allow_infinity=True), ANY)
UNIT = st.one_of(st.floats(0.1, 100), st.floats(-1, 0), st.floats(allow_nan=True, allow_infinity=True), ANY)


@FAST
@given(LAM)
def test_check_lam_gives_a_finite_weight_or_names_lam(lam):
    try:
        v = table.check_lam(lam)
    except ValueError as e:
        assert "lam" in str(e)
    else:
        assert type(v) is float and 0 <= v < math.inf


@FAST
@given(horizon=st.one_of(st.integers(-1, 7), ANY), k=st.integers(0, len(PROBLEMS)))
def test_check_horizon_fits_the_problems_or_names_horizon(horizon, k):
    probs = PROBLEMS[:k]
    try:
        h = table.check_horizon(horizon, probs)
    except ValueError as e:
        assert "horizon" in str(e)
    else:
        assert type(h) is int and h >= 1
        assert not probs or h == max(p.n_steps for p in probs)


@FAST
@given(a=st.integers(-99, 99), op=st.sampled_from("+-*"), b=st.integers(0, 99), junk=st.text(max_size=6))
def test_final_value_reads_a_step_or_an_answer_line_else_none(a, op, b, junk):
    v = a + b if op == "+" else a - b if op == "-" else a * b
    assert table.final_value(f"{a}{op}{b}={v}") == v
    assert table.final_value(f"{T.ANSWER}{v}") == v
    out = table.final_value(junk)
    assert out is None or isinstance(out, int)


@FAST
@given(c0=st.floats(0, 10), c1=st.one_of(st.floats(0, 20), st.floats(allow_nan=True, allow_infinity=True)),
       a0=st.floats(0, 1), a1=st.floats(0, 1),
       cost=st.one_of(st.floats(-5, 30), st.lists(st.floats(-5, 30), max_size=5),
                      st.floats(allow_nan=True, allow_infinity=True), ANY))
def test_the_mixing_line_joins_its_endpoints_or_names_the_argument(c0, c1, a0, a1, cost):
    cheap, dear = {"cost": c0, "accuracy": a0}, {"cost": c1, "accuracy": a1}
    try:
        y = B.mixing_line(cheap, dear, cost)
    except Exception as e:  # noqa: BLE001
        assert isinstance(e, checks.BadArgument) and named(e, "cost", "cheap", "dear"), repr(e)
    else:
        y = np.asarray(y)
        assert y.shape == np.shape(cost) and np.isfinite(y).all()
        assert (y >= min(a0, a1) - 1e-12).all() and (y <= max(a0, a1) + 1e-12).all()
        assert B.mixing_line(cheap, dear, c0) == a0 and math.isclose(B.mixing_line(cheap, dear, c1), a1,
                                                                      abs_tol=1e-12)


@TABLES
@given(A=tables(), data=st.data())
def test_a_fixed_route_runs_until_the_first_wrong_line_or_names_per_hop(A, data):
    n, H, M = A.right.shape
    per_hop = np.array(data.draw(st.lists(st.integers(-1, M), min_size=n * H, max_size=n * H))).reshape(n, H)
    try:
        w = episodes.fixed(A, per_hop)
    except Exception as e:  # noqa: BLE001
        assert isinstance(e, ValueError) and "per_hop" in str(e), repr(e)
        assert (per_hop < 0).any() or (per_hop >= M).any()
    else:
        assert set(np.unique(w.quality)) <= {0.0, 1.0} and (w.hops <= A.n_steps).all() and (w.hops >= 1).all()
        assert (w.flops >= 0).all() and (w.router_flops == 0).all()
        for i in range(n):                       # quality 1 exactly when every hop's line was right
            ok = all(A.right[i, k, per_hop[i, k]] for k in range(A.n_steps[i]))
            assert w.quality[i] == float(ok)
            assert math.isclose(w.pool_flops[i], sum(A.flops[i, k, per_hop[i, k]] for k in range(w.hops[i])))


@TABLES
@given(A=tables(), lam=LAM, unit=UNIT, seed=st.integers(0, 3))
def test_the_oracle_beats_every_route_or_names_the_argument(A, lam, unit, seed):
    try:
        acts = B.oracle_actions(A, unit, lam)
    except Exception as e:  # noqa: BLE001
        assert isinstance(e, ValueError) and named(e, "lam", "cost_unit"), repr(e)
        return
    n, H, M = A.right.shape
    assert acts.shape == (n, H) and ((acts >= 0) & (acts < M)).all()
    w = episodes.fixed(A, acts)
    ret = w.quality - float(lam) * w.flops / float(unit)
    assert np.isfinite(ret).all()
    for _ in range(3):                           # no random route has a better return on any problem
        other = episodes.fixed(A, np.random.default_rng(seed).integers(0, M, (n, H)))
        assert (ret >= other.quality - float(lam) * other.flops / float(unit) - 1e-9).all()
        seed += 10
    row = B.point("oracle", w, unit, lam)
    assert all(math.isfinite(row[k]) for k in ("accuracy", "cost", "return", "cost_flops"))


@TABLES
@given(A=tables(), unit=UNIT)
def test_a_method_row_is_finite_or_names_cost_unit(A, unit):
    w = episodes.fixed(A, np.zeros(A.horizon, int))
    try:
        row = B.point("m0 only", w, unit)
    except Exception as e:  # noqa: BLE001
        assert isinstance(e, ValueError) and "cost_unit" in str(e), repr(e)
    else:
        assert 0 <= row["accuracy"] <= 1 and math.isfinite(row["cost"]) and row["cost"] >= 0
        assert row["return"] == row["accuracy"]          # lam = 0: the return is the accuracy


@FAST
@given(pts=st.lists(st.tuples(st.floats(0, 10), st.floats(0, 1)), min_size=1, max_size=8),
       lo=st.floats(0, 10), hi=st.floats(0, 10))
def test_the_area_over_a_line_through_the_frontier_is_zero_and_signed(pts, lo, hi):
    up = bench.frontier(pts)
    assert (np.diff(up[0]) >= 0).all() and len(up[0]) == len(pts)
    same = lambda x: np.interp(x, *up)  # noqa: E731
    assert bench.area_between(up, same, lo, hi) == 0.0
    below = lambda x: np.interp(x, *up) - 0.5  # noqa: E731
    area = bench.area_between(up, below, lo, hi)
    assert (area == 0.0) if hi <= lo else math.isclose(area, 0.5 * (hi - lo), rel_tol=1e-9, abs_tol=1e-12)
