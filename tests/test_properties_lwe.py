"""Property tests (hypothesis) for nblib.lwe's pure entry points (no judge model is called): verdict and feedback
parsing, the position-debiased verdict and swap prior, the call-count formulas, the bootstrap interval and the
seeded stream. Any input gives a valid result or a ValueError / TypeError / KeyError naming the argument (issue 23).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nblib import checks, lwe
from nblib.lwe import debias, metrics, methods
from nblib.taskworld import metrics as tw_metrics
from property_helpers import FAST, named

ANY = st.one_of(st.none(), st.booleans(), st.integers(-5, 300), st.floats(allow_nan=True, allow_infinity=True),
                st.text(max_size=3), st.lists(st.integers(), max_size=2), st.integers(-3, 50).map(np.int64),
                st.floats(-1, 2).map(np.float32))
FLOATS = st.floats(-50, 50)
VERDICT_TEXT = st.lists(st.sampled_from(["[[A]]", "[[B]]", "[A]", "[B]", "A", "B", "[[", "]]", " ", "x", "\n"]),
                        max_size=6).map("".join)


def case(i: int) -> lwe.Case:
    return lwe.Case(id=f"c{i}", question=f"q{i}", output1="one", output2="two", better="AB"[i % 2])


CASES = [case(i) for i in range(12)]


@FAST
@given(st.one_of(VERDICT_TEXT, st.text(max_size=20), ANY))
def test_parse_verdict_follows_the_official_rules_or_names_text(text):
    try:
        v = lwe.parse_verdict(text)
    except Exception as e:  # noqa: BLE001
        assert isinstance(e, checks.BadArgument) and "text" in str(e), repr(e)
        assert text is not None and not isinstance(text, str)
    else:
        assert v in ("A", "B", None)
        if isinstance(text, str):
            a, b = "[[A]]" in text, "[[B]]" in text
            if a and b:
                assert v is None
            elif a or b:
                assert v == ("A" if a else "B")
            elif v is not None:                            # a lone single-bracket verdict, the other absent
                assert f"[{v}]" in text and f"[{lwe.flip(v)}]" not in text
        # the swapped judgment (A and B exchanged) gives the flipped verdict
        if isinstance(text, str):
            swapped = text.replace("A", "\0").replace("B", "A").replace("\0", "B")
            assert lwe.parse_verdict(swapped) == lwe.flip(v)


@FAST
@given(st.sampled_from(["A", "B", None]))
def test_flip_is_an_involution_on_verdicts(v):
    assert lwe.flip(lwe.flip(v)) == v and (v is None) == (lwe.flip(v) is None)
    assert v is None or lwe.flip(v) != v


@FAST
@given(st.one_of(st.none(), st.text(max_size=40),
                 st.dictionaries(st.sampled_from(["score", "Label", "tips"]), st.integers(0, 9), max_size=3).map(str)))
def test_parse_feedback_always_gives_raw_and_label(text):
    d = lwe.parse.parse_feedback(text)
    assert d["raw"] == (text or "") and "label" in d
    assert all(isinstance(k, str) for k in d)


@FAST
@given(margin=st.one_of(FLOATS, ANY), prior=st.one_of(FLOATS, ANY))
def test_the_debiased_verdict_is_a_or_b_or_names_the_argument(margin, prior):
    try:
        v = debias.verdict(margin, prior)
    except Exception as e:  # noqa: BLE001
        assert isinstance(e, checks.BadArgument) and named(e, "margin", "prior"), repr(e)
    else:
        assert v == ("A" if float(margin) - float(prior) > 0 else "B")
        # shifting both by the same amount leaves the verdict alone (the prior is subtracted)
        assert debias.verdict(float(margin) + 1.0, float(prior) + 1.0) == v or \
            abs(float(margin) - float(prior)) < 1e-9


@FAST
@given(m=st.one_of(st.lists(FLOATS, max_size=8), st.lists(st.floats(allow_nan=True, allow_infinity=True),
                                                           min_size=1, max_size=3)),
       data=st.data())
def test_the_swap_prior_is_a_finite_mean_or_names_the_margins(m, data):
    s = data.draw(st.one_of(st.lists(FLOATS, min_size=len(m), max_size=len(m)), st.lists(FLOATS, max_size=4)))
    try:
        b = debias.swap_prior(m, s)
    except Exception as e:  # noqa: BLE001
        assert isinstance(e, checks.BadArgument) and "margins" in str(e), repr(e)
    else:
        assert math.isfinite(b) and len(m) == len(s) >= 1
        mid = (np.asarray(m) + np.asarray(s)) / 2
        assert mid.min() - 1e-9 <= b <= mid.max() + 1e-9
        # a judge without position bias (m_swapped = -m) has prior 0
        assert debias.swap_prior(m, [-x for x in m]) == 0.0


def test_the_swap_prior_refuses_nan_margins_instead_of_returning_nan():
    """Issue 23: debias.swap_prior([nan], [1.0]) returned nan."""
    for m, s in (([math.nan], [1.0]), ([0.5, 1.0], [math.inf, 0.0])):
        try:
            debias.swap_prior(m, s)
        except checks.BadArgument as e:
            assert "margins" in str(e)
        else:
            raise AssertionError(f"swap_prior({m}, {s}) gave a result")


@FAST
@given(method=st.one_of(st.sampled_from(methods.METHODS), ANY), n=st.one_of(st.integers(-2, 300), ANY),
       batch_size=st.one_of(st.integers(-1, 9), ANY), data=st.data())
def test_expected_calls_is_a_count_or_names_the_argument(method, n, batch_size, data):
    inconsistent = data.draw(st.one_of(st.none(), st.integers(-2, n + 2 if isinstance(n, int) and n >= 0 else 5), ANY))
    try:
        c = lwe.expected_calls(method, n, batch_size, inconsistent)
    except Exception as e:  # noqa: BLE001
        assert named(e, "method", "n (cases", "batch_size", "inconsistent"), repr(e)
    else:
        assert isinstance(c, int) and c >= 0
        if method != "selective":                      # per case, the formula's count (the last batch rounds up)
            per = lwe.formula_calls_per_case(method, batch_size)
            assert math.isclose(c, per * n, abs_tol=1) if n else c == 0
        else:
            assert 0 <= inconsistent <= n and c >= 2 * n


@FAST
@given(method=st.one_of(st.sampled_from(methods.METHODS), ANY), batch_size=st.one_of(st.integers(-1, 9), ANY),
       r=st.one_of(st.floats(-0.5, 1.5), ANY), run_swap=st.booleans())
def test_formula_calls_per_case_is_in_range_or_names_the_argument(method, batch_size, r, run_swap):
    try:
        c = lwe.formula_calls_per_case(method, batch_size, r, run_swap)
    except Exception as e:  # noqa: BLE001
        assert named(e, "method", "batch_size", "r"), repr(e)
    else:
        assert math.isfinite(c) and 0 <= c <= 6
        if method == "selective":                      # r = 0: only the two checks; r = 1: the LWE step on top
            assert 2 <= c <= 5 + 1e-12


@FAST
@given(values=st.one_of(st.lists(st.floats(0, 1), min_size=1, max_size=30), st.lists(st.booleans(), min_size=1,
                                                                                     max_size=30),
                        st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=3)),
       n_boot=st.one_of(st.integers(-1, 200), ANY), level=st.one_of(st.floats(-0.5, 1.5), ANY))
def test_the_bootstrap_interval_brackets_the_mean_or_names_the_argument(values, n_boot, level):
    try:
        lo, hi = metrics.bootstrap(values, n_boot, 0, level)
    except Exception as e:  # noqa: BLE001
        assert named(e, "values", "n_boot", "level"), repr(e)
    else:
        x = np.asarray(values, float)
        assert math.isfinite(lo) and math.isfinite(hi) and x.min() - 1e-12 <= lo <= hi <= x.max() + 1e-12


@pytest.mark.parametrize("n_boot", [10**8, 1e8, np.int64(10**9)])
def test_a_bootstrap_too_large_to_hold_names_n_boot_instead_of_filling_memory(n_boot):
    """Every resample is held at once (n_boot x values): 10^8 resamples of 30 values would take 24 GB (a CI run
    was killed by the kernel for it when Hypothesis drew n_boot = 1e8). Above checks.MAX_RESAMPLES: one error."""
    with pytest.raises(checks.BadArgument, match="n_boot"):
        metrics.bootstrap([0.0, 1.0] * 15, n_boot)
    with pytest.raises(checks.BadArgument, match="n_boot"):
        tw_metrics.bootstrap_interval([0.0, 1.0] * 15, n_boot)
    assert metrics.bootstrap([0.0, 1.0], checks.MAX_RESAMPLES // 100)[0] <= 0.5


def test_the_bootstrap_of_no_values_is_nan_by_design():
    lo, hi = metrics.bootstrap([])
    assert math.isnan(lo) and math.isnan(hi)


@FAST
@given(n=st.one_of(st.none(), st.integers(-2, 20), ANY), seed=st.integers(0, 5))
def test_the_stream_is_a_seeded_prefix_or_names_n(n, seed):
    try:
        s = lwe.stream(CASES, n, seed)
    except Exception as e:  # noqa: BLE001
        assert isinstance(e, ValueError) and str(e).startswith("n "), repr(e)
    else:
        full = lwe.stream(CASES, None, seed)
        assert sorted(c.id for c in full) == sorted(c.id for c in CASES)
        assert s == full[:len(s)] and len(s) == (len(CASES) if n is None else min(int(n), len(CASES)))
