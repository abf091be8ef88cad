"""Argument checkers shared by every package: one clear error that names the argument and what to pass.

Each checker returns the value in a plain Python type (a numpy scalar becomes an int or a float) or raises
a `BadArgument` (a ValueError, so `except ValueError` still catches it) whose message names the argument,
the valid range or the valid names, and what it got. Nothing is clamped or replaced silently.

    temperature = checks.number("temperature", temperature, low=0.0)          # NaN and inf refused
    k = checks.whole("k", k, low=1, high=96)                                  # np.int64(12) accepted
    cases = checks.non_empty("cases", cases)
    method = checks.one_of("method", method, METHODS)
    names = checks.cost_order("models", names, costs)                          # cheapest first
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterable, Sequence


class BadArgument(ValueError):
    """An argument outside what a function accepts; the message names it, its valid values and what to do."""


def _range_text(low, high, low_open: bool = False, high_open: bool = False) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high}"
    return "(finite: not NaN or inf)"


def number(name: str, value: Any, low: float | None = None, high: float | None = None, *,
           low_open: bool = False, high_open: bool = False, finite: bool = True, hint: str = "") -> float:
    """`value` as a float: a real number (numpy scalars too), not NaN, finite unless `finite=False`, in range.

    The error reads "<name> must be a number <range> (<hint>), got <value>".
    """
    where = _range_text(low, high, low_open, high_open) + (f" ({hint})" if hint else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise BadArgument(f"{name} must be a number {where}, got {short(value)} ({type(value).__name__})")
    v = float(value)
    if math.isnan(v) or (finite and math.isinf(v)) \
            or (low is not None and (v < low or (low_open and v == low))) \
            or (high is not None and (v > high or (high_open and v == high))):
        raise BadArgument(f"{name} must be a number {where}, got {v!r}")
    return v


MAX_RESAMPLES = 100_000  # bootstrap resamples: more add no precision to a percentile interval; all are held at once
# (10^8 resamples of 30 values fill 24 GB)


def whole(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """`value` as an int: a Python or numpy integer (or a float with no fraction up to 2^53, e.g. 4.0), in
    [low, high]."""
    where = _range_text(low, high)
    if isinstance(value, bool):
        raise BadArgument(f"{name} must be a whole number {where}, got {value!r} (a bool)")
    if isinstance(value, numbers.Integral):
        v = int(value)
    elif isinstance(value, numbers.Real) and math.isfinite(float(value)) and float(value).is_integer() \
            and abs(float(value)) <= 2 ** 53:  # beyond 2^53 a float is no exact count (and 1e153 overflows sums)
        v = int(value)
    else:
        raise BadArgument(f"{name} must be a whole number {where}, got {value!r} ({type(value).__name__})")
    if (low is not None and v < low) or (high is not None and v > high):
        raise BadArgument(f"{name} must be a whole number {where}, got {v}")
    return v


def non_empty(name: str, value: Any, what: str = "item") -> list:
    """`value` as a list with at least one element (a string is not taken as a sequence of characters)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise BadArgument(f"{name} must be a list of {what}s, got {type(value).__name__} {short(value)}")
    out = list(value)
    if not out:
        raise BadArgument(f"{name} is empty: pass at least one {what}")
    return out


def one_of(name: str, value: Any, valid: Iterable[str]) -> str:
    """`value` when it is one of the `valid` names; else an error listing them."""
    valid = list(valid)
    if not isinstance(value, str) or value not in valid:
        raise BadArgument(f"{name} must be one of {valid}, got {short(value)}")
    return value


def names(name: str, value: Any, valid: Iterable[str] | None = None, what: str = "name") -> list[str]:
    """A non-empty list of names (a single string is refused, not split into letters), each known if `valid`."""
    if isinstance(value, str):
        raise BadArgument(f"{name} must be a list of {what}s, got the single string {value!r}: "
                          f"write [{value!r}] (or ({value!r},)) for one")
    out = non_empty(name, value, what)
    valid = None if valid is None else list(valid)
    for v in out:
        if not isinstance(v, str):
            raise BadArgument(f"{name} must hold {what}s (strings), got {short(v)}")
        if valid is not None and v not in valid:
            raise BadArgument(f"{name}: unknown {what} {v!r}; valid {what}s: {valid}")
    return out


def distinct(name: str, value: Sequence) -> list:
    """`value` as a list with no repeated element; else an error naming the first repeat."""
    out = list(value)
    seen = set()
    for v in out:
        if v in seen:
            raise BadArgument(f"{name} repeats {short(v)}: each element may appear once")
        seen.add(v)
    return out


def cost_order(name: str, value: Sequence[str], costs: Sequence[float]) -> list[str]:
    """`value` (model names) when `costs` (one per model) strictly increase: cheapest model first."""
    out = list(value)
    if len(out) != len(costs):
        raise BadArgument(f"{name}: {len(out)} models but {len(costs)} costs")
    for i in range(1, len(out)):
        if not costs[i] > costs[i - 1]:
            order = [m for _, m in sorted(zip(costs, out))]
            raise BadArgument(f"{name} must be in cost order, cheapest first: {out[i]!r} costs {costs[i]:.4g} "
                              f"but comes after {out[i - 1]!r} ({costs[i - 1]:.4g}); pass {order}")
    return out


def short(value: Any, n: int = 80) -> str:
    """A value's repr cut to n characters, for error messages."""
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."
