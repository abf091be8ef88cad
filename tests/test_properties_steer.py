"""Property tests (hypothesis) for nblib.steer's pure entry points (no model is loaded): the routing threshold and
its grid, the routing rule's endpoints, token-score aggregation, the confidence -> probability mixture, the ledger
rows and their costs, and latency profiles. Any input gives a valid result or a ValueError naming the argument
(issue 23)."""
from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from nblib import checks, steer
from nblib.steer import accounting, confidence, latency, routing
from nblib.steer.engine import Event, goes_large
from property_helpers import FAST, named

ANY = st.one_of(st.none(), st.booleans(), st.integers(-5, 300), st.floats(allow_nan=True, allow_infinity=True),
                st.text(max_size=3), st.lists(st.integers(), max_size=2), st.integers(-3, 50).map(np.int64),
                st.floats(-1, 2).map(np.float32))
TAU = st.one_of(st.floats(-0.5, 1.5), st.sampled_from([0, 1, 0.0, 1.0]), ANY)


@FAST
@given(TAU)
def test_check_threshold_is_in_0_1_or_says_so(tau):
    try:
        t = steer.check_threshold(tau)
    except ValueError as e:
        assert "threshold" in str(e)
    else:
        assert type(t) is float and 0.0 <= t <= 1.0


@FAST
@given(st.one_of(st.lists(st.floats(0, 1), max_size=5), st.lists(TAU, max_size=3), TAU))
def test_check_thresholds_is_a_non_empty_list_in_0_1_or_says_so(taus):
    try:
        out = routing.check_thresholds(taus)
    except Exception as e:  # noqa: BLE001
        assert named(e, "threshold"), repr(e)
    else:
        assert out and all(type(t) is float and 0.0 <= t <= 1.0 for t in out)


@FAST
@given(values=st.lists(st.floats(0, 1), min_size=1, max_size=40), n=st.integers(2, 30))
def test_the_threshold_grid_moves_about_one_notch_of_the_pool_per_step(values, n):
    grid = steer.threshold_grid(values, n)
    assert len(grid) == n and grid[0] == 0.0 and grid[-1] == 1.0 and grid == sorted(grid)
    v = np.asarray(values)
    # tau = 0 sends no pool step to the large model, tau = 1 every one (the routing rule's endpoints)
    assert not any(goes_large(x, grid[0]) for x in v) and all(goes_large(x, grid[-1]) for x in v)
    shares = [float(np.mean([goes_large(x, t) for x in v])) for t in grid]
    assert shares == sorted(shares)


@FAST
@given(value=st.one_of(st.none(), st.floats(0, 1)), tau=st.floats(0, 1))
def test_goes_large_has_exact_endpoints_and_is_monotone_in_tau(value, tau):
    assert goes_large(value, 1.0) and not goes_large(value, 0.0)
    if goes_large(value, tau):
        assert goes_large(value, min(1.0, tau + 0.1))


@FAST
@given(scores=st.one_of(st.lists(st.floats(-20, 20), max_size=6),
                        st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=3), ANY),
       how=st.one_of(st.sampled_from(["mean", "min", "first"]), ANY))
def test_aggregate_lies_between_the_token_scores_or_names_the_argument(scores, how):
    try:
        c = confidence.aggregate(scores, how)
    except Exception as e:  # noqa: BLE001
        assert isinstance(e, checks.BadArgument) and named(e, "scores", "how"), repr(e)
    else:
        assert math.isfinite(c) and min(scores) - 1e-9 <= c <= max(scores) + 1e-9
        if how == "first":
            assert c == scores[0]


@settings(max_examples=20, deadline=None)      # each example fits a 2-component mixture (EM)
@given(lo=st.lists(st.floats(0.0, 0.4), min_size=3, max_size=30), hi=st.lists(st.floats(0.6, 1.0), min_size=3,
                                                                              max_size=30),
       probe=st.lists(st.floats(-1, 2), min_size=1, max_size=10))
def test_the_calibrated_probability_is_in_0_1_and_rises_with_confidence(lo, hi, probe):
    cal = steer.Calibrator().fit(lo + hi)
    assert cal.means_[0] <= cal.means_[1] and all(s > 0 for s in cal.stds_)
    assert math.isclose(sum(cal.weights_), 1.0, rel_tol=1e-6)
    x = np.sort(np.asarray(probe))
    p = cal.posterior(x)
    assert p.shape == x.shape and ((p >= 0) & (p <= 1)).all() and (np.diff(p) >= -1e-12).all()


@FAST
@given(st.one_of(st.lists(st.floats(0, 1), max_size=3), st.lists(st.floats(allow_nan=True, allow_infinity=True),
                                                                 min_size=4, max_size=6), ANY))
def test_fitting_the_calibrator_on_a_bad_pool_names_the_scores(pool):
    try:
        cal = steer.Calibrator().fit(pool)
    except Exception as e:  # noqa: BLE001
        assert isinstance(e, ValueError) and named(e, "scores"), repr(e)
    else:
        p = cal.posterior(np.asarray(pool, float))
        assert ((p >= 0) & (p <= 1)).all()


@FAST
@given(st.one_of(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=4), ANY))
def test_the_posterior_refuses_nan_scores_or_gives_probabilities(scores):
    cal = steer.Calibrator().fit([0.1, 0.2, 0.15, 0.8, 0.9, 0.85])
    try:
        p = cal.posterior(scores)
    except Exception as e:  # noqa: BLE001
        assert isinstance(e, checks.BadArgument) and "scores" in str(e), repr(e)
    else:
        p = np.asarray(p)
        assert ((p >= 0) & (p <= 1)).all()


EVENT = st.builds(lambda m, k, t, f, g: (m, k, t, f, g), st.sampled_from(["small", "large"]),
                  st.sampled_from(["prefill", "decode"]), st.integers(1, 40), st.integers(0, 10**6),
                  st.integers(0, 10**4))


def events(raw, first_call: int):
    return [Event(m, k, t, 0, f, 0, call=first_call + i // 2, gen_flops=g) for i, (m, k, t, f, g) in enumerate(raw)]


@FAST
@given(a=st.lists(EVENT, max_size=12), b=st.lists(EVENT, max_size=12),
       how=st.one_of(st.sampled_from(accounting.ACCOUNTINGS), ANY))
def test_ledger_rows_add_up_and_cost_what_their_events_charge(a, b, how):
    ea, eb = events(a, 0), events(b, 1000)                         # two pieces of work, disjoint forward passes
    ra, rb, both = accounting.ledger_row(ea), accounting.ledger_row(eb), accounting.ledger_row(ea + eb)
    assert accounting.add_rows(ra, rb) == both
    for r in accounting.ROLES:
        assert both[f"gen_tokens_{r}"] == sum(both[f"calls_{r}"].values())
    try:
        c = accounting.cost(both, how)
    except accounting.UnknownAccounting as e:
        assert how not in accounting.ACCOUNTINGS[:2] and ("accounting" in str(e) or "profile" in str(e))
    except Exception as e:  # noqa: BLE001
        raise AssertionError(repr(e)) from e
    else:
        events_all = ea + eb
        want = sum(e.gen_flops for e in events_all) if how == "generated_flops" else sum(e.flops for e in events_all)
        assert c == float(want) and c >= 0


PROFILE = latency.roofline({"small": 1.5e9, "large": 32e9})


@FAST
@given(hist=st.dictionaries(st.integers(1, 400), st.integers(0, 50), max_size=6), tokens=st.integers(1, 500))
def test_a_latency_profile_prices_forwards_positive_and_monotone(hist, tokens):
    for m in ("small", "large"):
        t, t2 = PROFILE.time(m, tokens), PROFILE.time(m, tokens + 1)
        assert 0 < t <= t2
        p = PROFILE.price(m, hist)
        assert p >= 0 and math.isfinite(p) and (p > 0) == any(hist.values())
    assert PROFILE.price("small", hist) <= PROFILE.price("large", hist)
    row = {"calls_small": hist, "calls_large": {}}
    assert accounting.cost(row, "latency_gpu", {"small": "small", "large": "large"},
                           {"latency_gpu": PROFILE}) == PROFILE.price("small", hist)


@FAST
@given(params=st.one_of(st.floats(1e6, 1e12), ANY), bpp=st.one_of(st.floats(0.5, 4), ANY),
       overhead=st.one_of(st.floats(0, 1e-3), ANY), gpu=st.one_of(st.sampled_from(sorted(latency.GPUS)), ANY))
def test_roofline_gives_finite_non_decreasing_times_or_names_the_argument(params, bpp, overhead, gpu):
    try:
        prof = latency.roofline({"m": params}, gpu=gpu, bytes_per_param=bpp, overhead_s=overhead)
    except Exception as e:  # noqa: BLE001
        assert isinstance(e, ValueError) and named(e, "size of 'm'", "GPU", "bytes_per_param", "overhead_s"), repr(e)
    else:
        s = np.asarray(prof.seconds["m"])
        assert np.isfinite(s).all() and (s > 0).all() and (np.diff(s) >= 0).all()


def test_regressions_found_by_these_properties():
    """Issue 23: Calibrator.posterior([5.5e152]) returned nan (inf - inf in the log densities);
    Calibrator().fit([0, 0, 0, 1.5e154]) raised sklearn's 'reg_covar ... Got inf'; check_thresholds(np.int64(0))
    raised "'numpy.int64' object is not iterable"; posterior([nan]) returned nan."""
    cal = steer.Calibrator().fit([0.1, 0.2, 0.15, 0.8, 0.9, 0.85])
    p = cal.posterior([5.473918558341218e+152, -5.473918558341218e+152])
    assert p[0] == 1.0 and 0.0 <= p[1] < 1e-300          # the clip at +-700 in the exponent
    assert cal.posterior_at(1e200) == 1.0
    untied = steer.Calibrator(tied=False).fit([0.1, 0.2, 0.15, 0.12, 0.8, 0.9, 0.85, 0.5])
    assert np.isfinite(untied.posterior([1e200, -1e200, 0.5])).all()
    for bad in ([0.0, 0.0, 0.0, 1.5482003035190317e+154], [math.nan] * 5):
        try:
            steer.Calibrator().fit(bad)
        except checks.BadArgument as e:
            assert "scores" in str(e)
        except ValueError as e:
            assert "scores" in str(e)
        else:
            raise AssertionError(f"fit({bad}) gave a calibrator")
    assert routing.check_thresholds(np.int64(0)) == [0.0]
    try:
        cal.posterior([math.nan])
    except checks.BadArgument as e:
        assert "scores" in str(e)
    else:
        raise AssertionError("posterior([nan]) gave a result")
