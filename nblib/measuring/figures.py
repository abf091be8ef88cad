"""Static figures shared by the notebooks (each returns its matplotlib Figure)."""
from __future__ import annotations

import matplotlib.pyplot as plt


def _style(ax, xlabel: str, ylabel: str, title: str, log2x: bool = True, from_zero: bool = False) -> None:
    """Label one axes the suite's way: log2 x, units in labels, a small legend."""
    if log2x:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if from_zero:
        ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)


def sweep_figure(sweep):
    """Prefill latency vs prompt length, decode step vs batch, throughput vs batch (one row)."""
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(12, 3.4))
    for bs, g in sweep.groupby("batch"):
        a.errorbar(g["seq"], g["prefill_ms"], yerr=g["prefill_spread_ms"] / 2, marker="o", capsize=3, label=f"batch {bs}")
    for s, g in sweep.groupby("seq"):
        b.errorbar(g["batch"], g["decode_ms"], yerr=g["decode_spread_ms"] / 2, marker="s", capsize=3, label=f"context {s}")
        c.plot(g["batch"], g["batch"] / (g["decode_ms"] / 1e3), marker="^", label=f"context {s}")
    _style(a, "prompt tokens", "prefill latency (ms)", "prefill grows with tokens x batch")
    _style(b, "batch size", "one decode step (ms)", "a decode step barely grows with batch", from_zero=True)
    _style(c, "batch size", "decode tokens / s", "so throughput grows with batch", from_zero=True)
    fig.tight_layout()
    return fig


def bar_figure(labels, values, ylabel: str, title: str, colors=None):
    """A small labelled bar chart."""
    fig, ax = plt.subplots(figsize=(5, 3))
    bars = ax.bar(labels, values, color=colors)
    ax.bar_label(bars, fmt="%.3g")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    return fig
