"""nblib.checks: every input either comes back as a plain value or raises BadArgument naming the argument.

Property tests (hypothesis, few examples, no deadline: the full suite's CI budget) plus the entry points that
use the checkers: any input gives a valid result or a ValueError that names the argument.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nblib import checks

FAST = settings(max_examples=60, deadline=None)
ANY = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                st.text(max_size=5), st.lists(st.integers(), max_size=3),
                st.integers(-5, 5).map(np.int64), st.floats(-2, 2).map(np.float32))


@FAST
@given(ANY)
def test_number_returns_a_finite_float_in_range_or_names_the_argument(x):
    try:
        v = checks.number("alpha", x, low=0, high=1)
    except checks.BadArgument as e:
        assert str(e).startswith("alpha must be a number in [0, 1]")
    else:
        assert type(v) is float and math.isfinite(v) and 0 <= v <= 1 and not isinstance(x, (bool, str))


@FAST
@given(ANY)
def test_whole_returns_an_int_in_range_or_names_the_argument(x):
    try:
        v = checks.whole("k", x, low=1, high=4)
    except checks.BadArgument as e:
        assert str(e).startswith("k must be a whole number in [1, 4]")
    else:
        assert type(v) is int and 1 <= v <= 4 and v == x and not isinstance(x, bool)


def test_the_messages_say_what_to_pass():
    with pytest.raises(ValueError, match=r"tau must be a number in \[0, 1\] \(0 = all\), got nan"):
        checks.number("tau", float("nan"), low=0, high=1, hint="0 = all")
    assert checks.whole("k", np.int64(12), 1, 96) == 12                     # issue 23: numpy ints are whole numbers
    assert checks.whole("k", 2.0 ** 53) == 2 ** 53
    with pytest.raises(ValueError, match=r"k must be a whole number"):       # no exact count: a CI run's
        checks.whole("k", 1.185093988513647e+153)                           # Hypothesis draw overflowed a sum
    with pytest.raises(ValueError, match=r"method must be one of \['a', 'b'\], got 'c'"):
        checks.one_of("method", "c", ["a", "b"])
    with pytest.raises(ValueError, match=r"models must be a list of models, got the single string 'large'"):
        checks.names("models", "large", what="model")                        # not 'l', 'a', 'r', ...
    with pytest.raises(ValueError, match=r"models: unknown model 'huge'; valid models: \['tiny', 'large'\]"):
        checks.names("models", ["tiny", "huge"], ["tiny", "large"], what="model")
    with pytest.raises(ValueError, match="cases is empty"):
        checks.non_empty("cases", [], "case")
    with pytest.raises(ValueError, match="calibration repeats -1"):
        checks.distinct("calibration", [3, -1, -1])
    with pytest.raises(ValueError, match=r"cheapest first.*pass \['tiny', 'mid', 'large'\]"):
        checks.cost_order("models", ["large", "mid", "tiny"], [9.0, 3.0, 1.0])
    assert checks.cost_order("models", ["tiny", "large"], [1.0, 9.0]) == ["tiny", "large"]


@FAST
@given(st.lists(st.one_of(st.floats(0, 1), st.just(float("nan")), st.just(float("inf"))), max_size=8),
       st.one_of(st.integers(-2, 30), st.integers(2, 9).map(np.int64), st.floats(-1, 9)))
def test_threshold_grid_gives_a_sorted_grid_in_0_1_or_a_named_error(values, n):
    from nblib import steer

    try:
        grid = steer.threshold_grid(values, n)
    except ValueError as e:
        assert "pool_values" in str(e) or str(e).startswith("n (thresholds")
    else:
        assert len(grid) == int(n) and grid[0] == 0.0 and grid[-1] == 1.0
        assert all(0 <= g <= 1 and math.isfinite(g) for g in grid) and grid == sorted(grid)
