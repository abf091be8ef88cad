"""The suite's figure and table look (nblib.style): tables, integer axes, legends, rcParams."""
from __future__ import annotations

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402

from nblib import style  # noqa: E402


def axes():
    """A fresh Agg axes."""
    return Figure().subplots()


def test_table_has_thousands_separators_fixed_decimals_and_no_wrapping():
    df = pd.DataFrame({"tokens": [1234567, 89], "ms": [3.14159, 1234.5], "name": ["a b", "c"], "ok": [True, False]})
    html = style.table(df, decimals=2, caption="costs").to_html()
    assert "1,234,567" in html and ">89<" in html
    assert "3.14<" in html and "1,234.50" in html and "3.14159" not in html
    assert "white-space: nowrap" in html and "costs" in html
    assert "True" in html
    assert "1234567" not in html
    custom = style.table(df, formats={"ms": "{:.0f} ms"}).to_html()
    assert "1234 ms" in custom or "1235 ms" in custom
    assert style.fmt_int(1234567) == "1,234,567" and style.fmt_int(float("nan")) == ""
    assert style.fmt_float(1234.5, 1) == "1,234.5"


def test_integer_axis_ticks_whole_numbers_only():
    ax = axes()
    ax.plot([1, 2, 3], [0.1, 0.2, 0.3])
    ax.set_xlim(0.6, 3.2)
    style.integer_axis(ax, "x")
    ticks = ax.xaxis.get_major_locator().tick_values(0.6, 3.2)
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)
    ylocs = ax.yaxis.get_major_locator().tick_values(0.1, 0.3)
    assert not all(float(t).is_integer() for t in ylocs)       # y untouched
    log = axes()
    log.set_xscale("log", base=2)
    style.integer_axis(log, "x")
    fmt = log.xaxis.get_major_formatter()
    assert fmt(8, 0) == "8" and fmt(1024, 0) == "1,024"
    with pytest.raises(ValueError):
        style.integer_axis(ax, "z")


def test_legend_only_when_more_than_one_series():
    ax = axes()
    ax.plot([0, 1], [0, 1], label="only one")
    ax.plot([0, 1], [1, 0])                                    # unlabelled: does not count
    assert style.legend_if_many(ax) is None and ax.get_legend() is None
    ax.plot([0, 1], [2, 2], label="second")
    leg = style.legend_if_many(ax)
    assert leg is not None and [t.get_text() for t in leg.get_texts()] == ["only one", "second"]
    one = axes()
    one.plot([0, 1], [0, 1], label="a")
    one.legend()                                               # a stale legend on a single series is removed
    assert style.legend_if_many(one) is None and one.get_legend() is None


def test_label_axes_and_use_is_idempotent():
    ax = axes()
    ax.plot([1, 2, 4], [1, 2, 3], label="x")
    ax.plot([1, 2, 4], [2, 3, 4], label="y")
    style.label_axes(ax, "batch size", "ms", "title", log2x=True, integer_x=True, from_zero=True)
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "batch size" and ax.get_legend() is not None
    old = dict(matplotlib.rcParams)
    try:
        style.use()
        once = dict(matplotlib.rcParams)
        style.use()
        assert dict(matplotlib.rcParams) == once
        assert matplotlib.rcParams["axes.titlesize"] == 13 and 11 <= matplotlib.rcParams["font.size"] <= 12
    finally:
        matplotlib.rcParams.update(old)
    with style.context():
        assert matplotlib.rcParams["grid.alpha"] == style.RC["grid.alpha"]
    assert matplotlib.rcParams["font.size"] == old["font.size"]
