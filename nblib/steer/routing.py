"""The routing rule and its thresholds: tau = 0 is exactly small-only, tau = 1 exactly large-only."""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from .. import checks


def check_threshold(tau) -> float:
    """Return tau as a float, or raise a ValueError when it is not a number in [0, 1]."""
    if isinstance(tau, bool) or not isinstance(tau, (int, float, np.floating, np.integer)):
        raise ValueError(f"a routing threshold is a number in [0, 1], got {tau!r}")
    t = float(tau)
    if not 0.0 <= t <= 1.0 or np.isnan(t):
        raise ValueError(f"routing threshold {tau!r} is outside [0, 1]: 0 = small model only, 1 = large model only")
    return t


def check_thresholds(taus: Sequence[float]) -> list[float]:
    """Validate a list of thresholds (each in [0, 1]; at least one)."""
    if isinstance(taus, (int, float, np.integer, np.floating)) and not isinstance(taus, bool):
        taus = [taus]
    if isinstance(taus, (str, bytes, bool)) or not isinstance(taus, Iterable):
        raise checks.BadArgument(f"routing thresholds are a list of numbers in [0, 1], got {checks.short(taus)}")
    out = [check_threshold(t) for t in taus]
    if not out:
        raise ValueError("give at least one routing threshold in [0, 1]")
    return out


def threshold_grid(pool_values: Sequence[float], n: int = 25) -> list[float]:
    """n thresholds: 0, 1 and n-2 quantiles of the routing values of a calibration pool (equal steps of share).

    Each inner threshold sits just above a quantile of the pool, so moving one notch routes about 1/(n-1) more
    of the pool's steps to the large model; 0 and 1 are the endpoints (small-only, large-only).
    """
    n = checks.whole("n (thresholds in the grid, the two endpoints included)", n, low=2)
    try:
        v = np.asarray(pool_values, dtype=float).ravel()
    except (TypeError, ValueError):
        raise checks.BadArgument(f"pool_values must be numbers (routing values in [0, 1]), got "
                                 f"{type(pool_values).__name__}") from None
    if v.size == 0:
        raise checks.BadArgument("pool_values (the calibration pool) is empty: calibrate on at least one step")
    bad = np.flatnonzero(~np.isfinite(v))
    if bad.size:
        raise checks.BadArgument(f"pool_values must be finite: {bad.size} of {v.size} are NaN or inf (first at "
                                 f"index {int(bad[0])}: {v[bad[0]]!r}); drop or recompute those steps' values")
    q = np.quantile(v, np.linspace(0, 1, n)[1:-1])
    inner = np.clip(np.nextafter(q, np.inf), 1e-12, 1 - 1e-12)
    grid = np.maximum.accumulate(np.concatenate([[0.0], inner, [1.0]]))
    return [float(x) for x in grid]
