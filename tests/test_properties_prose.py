"""Property tests (hypothesis) for nblib.prose's public entry points: any input gives a valid sentence or a
TypeError / ValueError whose message names the argument (issue 23)."""
from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from nblib import prose

FAST = settings(max_examples=50, deadline=None)
ANY = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.integers(),
                st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4),
                st.lists(st.integers(), max_size=2), st.integers(-5, 5).map(np.int64),
                st.floats(-1e3, 1e3).map(np.float32))
NUMBER = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**9, 10**9))


def named(err: Exception, *names: str) -> bool:
    """Whether the error is a documented kind whose message names one of the arguments."""
    return isinstance(err, (TypeError, ValueError, KeyError)) and any(n in str(err) for n in names)


@FAST
@given(x=ANY, unit=st.one_of(st.text(max_size=3), ANY), decimals=st.one_of(st.integers(-3, 30), ANY))
def test_number_renders_a_finite_number_or_names_the_argument(x, unit, decimals):
    try:
        out = prose.number(x, unit, decimals)
    except Exception as e:  # noqa: BLE001
        assert named(e, "number", "unit", "decimals"), repr(e)
        if isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) \
                and not math.isfinite(float(x)):
            assert "no measurement" in str(e) or "unit" in str(e) or "decimals" in str(e)
    else:
        assert isinstance(out, str) and out.endswith(unit) and "nan" not in out.lower()
        assert math.isfinite(float(x)) and not isinstance(x, (bool, str))


@FAST
@given(x=ANY, decimals=st.one_of(st.integers(-3, 30), ANY))
def test_percent_and_times_render_or_name_the_argument(x, decimals):
    for fn, arg, suffix in ((prose.percent, "fraction", " %"), (prose.times, "ratio", "x")):
        try:
            out = fn(x, decimals)
        except Exception as e:  # noqa: BLE001
            assert named(e, arg, "number", "decimals"), repr(e)
        else:
            assert out.endswith(suffix) and math.isfinite(float(x))


@FAST
@given(others=st.one_of(st.dictionaries(st.text(max_size=3), st.one_of(NUMBER, st.none(), st.text(max_size=2)),
                                        max_size=4), ANY),
       ours=st.one_of(st.tuples(st.text(max_size=3), NUMBER), ANY),
       margin=st.one_of(st.none(), NUMBER, ANY), better=st.booleans())
def test_verdict_states_ours_beside_the_strongest_finite_other_or_names_the_argument(others, ours, margin, better):
    try:
        out = prose.verdict(ours, others, unit="x", higher_is_better=better, margin=margin)
    except Exception as e:  # noqa: BLE001
        assert named(e, "ours", "others", "margin", "nothing to compare", "value of"), repr(e)
    else:
        name, value = ours
        rest = {k: float(v) for k, v in others.items()
                if k != name and isinstance(v, (int, float)) and math.isfinite(float(v))}
        best = (max if better else min)(rest, key=rest.get)
        assert out.startswith(f"{name}: ") and f"strongest other method: {best}, " in out
        assert math.isfinite(float(value))


@FAST
@given(parts=st.lists(st.one_of(st.text(max_size=5), ANY), max_size=3))
def test_markdown_takes_strings_only(parts):
    try:
        md = prose.markdown(*parts)
    except TypeError as e:
        assert "takes strings" in str(e) and not all(isinstance(p, str) for p in parts)
    else:
        assert md.data == " ".join(parts)
