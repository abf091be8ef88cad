"""Static figures of notebook 00 (each returns its matplotlib Figure), in the suite's style (`nblib.style`)."""
from __future__ import annotations

import matplotlib.pyplot as plt

from .. import style


def sweep_figure(sweep):
    """Prefill latency vs prompt length, decode step vs batch, throughput vs batch (one row)."""
    with style.context():
        fig, (a, b, c) = plt.subplots(1, 3, figsize=(13, 3.9))
        for bs, g in sweep.groupby("batch"):
            a.errorbar(g["seq"], g["prefill_ms"], yerr=g["prefill_spread_ms"] / 2, marker="o", capsize=3,
                       label=f"batch {bs}")
        for s, g in sweep.groupby("seq"):
            b.errorbar(g["batch"], g["decode_ms"], yerr=g["decode_spread_ms"] / 2, marker="s", capsize=3,
                       label=f"context {s}")
            c.plot(g["batch"], g["batch"] / (g["decode_ms"] / 1e3), marker="^", label=f"context {s}")
        style.label_axes(a, "prompt tokens", "prefill latency (ms)", "prefill grows with tokens x batch",
                         log2x=True, integer_x=True)
        style.label_axes(b, "batch size", "one decode step (ms)", "a decode step barely grows\nwith batch",
                         log2x=True, integer_x=True, from_zero=True)
        style.label_axes(c, "batch size", "decode tokens / s", "so throughput grows with batch",
                         log2x=True, integer_x=True, from_zero=True)
        fig.tight_layout()
    return fig


def bar_figure(labels, values, ylabel: str, title: str, colors=None):
    """A small labelled bar chart."""
    with style.context():
        fig, ax = plt.subplots(figsize=(5.5, 3.4))
        bars = ax.bar(labels, values, color=colors)
        ax.bar_label(bars, fmt="%.3g")
        ax.margins(y=0.12)
        style.label_axes(ax, ylabel=ylabel, title=title)
        ax.grid(axis="x", visible=False)
        fig.tight_layout()
    return fig
