"""The suite's one look for figures and tables: call `style.use()` once per notebook.

- `use()` sets matplotlib's rcParams to `RC` (idempotent); `context()` applies
  `RC` only inside a `with` block (the slider panels and figure builders use it,
  so their figures look the same whether or not the notebook called `use()`).
- `label_axes(ax, ...)` labels one axes the suite's way (units in labels,
  optional log2 x, a legend only where there is more than one labelled series).
- `legend_if_many(ax)`: a legend exactly when an axes has two or more labelled series.
- `integer_axis(ax, "x")`: whole-number ticks for whole quantities (batch size, tokens, depth).
- `table(df)`: a pandas Styler with thousands separators for integers, fixed
  decimals for floats, and no wrapping inside a cell; `fmt_int` / `fmt_float`
  format one number the same way.
"""
from __future__ import annotations

import matplotlib as mpl
from cycler import cycler

#: colour-blind-friendly cycle (Okabe-Ito), first colour blue as matplotlib's default
COLORS = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]

#: rcParams of every figure: readable at 100 % zoom and on a projector
RC = {
    "font.size": 11.5,
    "axes.titlesize": 13,
    "axes.labelsize": 11.5,
    "xtick.labelsize": 10.5,
    "ytick.labelsize": 10.5,
    "legend.fontsize": 10,
    "legend.framealpha": 0.85,
    "figure.titlesize": 14,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": cycler(color=COLORS),
    "lines.linewidth": 1.8,
    "lines.markersize": 6,
    "image.cmap": "viridis",
}


def use() -> None:
    """Apply the suite's plotting style to matplotlib's global rcParams (idempotent: call once per notebook)."""
    mpl.rcParams.update(RC)


def context():
    """A `with` block inside which matplotlib uses the suite's style (the global rcParams are restored after)."""
    return mpl.rc_context(RC)


def _labelled(ax) -> list:
    handles, labels = ax.get_legend_handles_labels()  # skips labels starting with "_"
    return [h for h, lab in zip(handles, labels, strict=True) if lab]


def legend_if_many(ax, **kwargs):
    """Draw a legend on `ax` when it has more than one labelled series (removing a stale one otherwise); return it or None."""
    if len(_labelled(ax)) > 1:
        return ax.legend(**kwargs)
    if ax.get_legend() is not None:
        ax.get_legend().remove()
    return None


def integer_axis(ax, which: str = "x") -> None:
    """Ticks at whole numbers only on `ax`'s x or y axis (log axes: plain integer labels, no 2^k notation)."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

    if which not in ("x", "y"):
        raise ValueError(f"which must be 'x' or 'y', not {which!r}")
    axis = ax.xaxis if which == "x" else ax.yaxis
    if axis.get_scale() == "log":
        axis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt_int(v) if v >= 1 and float(v).is_integer() else ""))
        axis.set_minor_formatter(NullFormatter())
    else:
        axis.set_major_locator(MaxNLocator(integer=True))


def label_axes(ax, xlabel: str = "", ylabel: str = "", title: str = "", log2x: bool = False, from_zero: bool = False,
               integer_x: bool = False, **legend) -> None:
    """Label one axes the suite's way: units in the labels, optional log2 x, y from zero, a legend if >1 series."""
    if log2x:
        ax.set_xscale("log", base=2)
    if integer_x:
        integer_axis(ax, "x")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if from_zero:
        ax.set_ylim(bottom=0)
    legend_if_many(ax, **legend)


def fmt_int(x) -> str:
    """A whole number with thousands separators: 1234567 -> '1,234,567' (NaN -> '')."""
    if x is None or x != x:
        return ""
    return f"{int(round(float(x))):,}"


def fmt_float(x, decimals: int = 2) -> str:
    """A float with thousands separators and fixed decimals: 1234.5 -> '1,234.50' (NaN -> '')."""
    if x is None or x != x:
        return ""
    return f"{float(x):,.{decimals}f}"


NOWRAP = [{"selector": "th, td", "props": [("white-space", "nowrap")]}]


def table(df, decimals: int = 2, caption: str | None = None, hide_index: bool = False, formats: dict | None = None):
    """A pandas Styler of `df`: integer columns with thousands separators, floats with `decimals` places, no wrapping.

    `formats` overrides the format of named columns (a format string or a function, as `Styler.format` takes).
    """
    import pandas as pd

    fmt = {}
    for col in df.columns:
        kind = df[col].dtype
        if pd.api.types.is_bool_dtype(kind):
            continue
        if pd.api.types.is_integer_dtype(kind):
            fmt[col] = fmt_int
        elif pd.api.types.is_float_dtype(kind):
            fmt[col] = lambda v, d=decimals: fmt_float(v, d)
    fmt.update(formats or {})
    styler = df.style.format(fmt).set_table_styles(NOWRAP, overwrite=False)
    if caption:
        styler = styler.set_caption(caption)
    if hide_index:
        styler = styler.hide(axis="index")
    return styler
