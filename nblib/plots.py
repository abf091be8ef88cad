"""Static figures shared by the notebooks (each returns its matplotlib Figure)."""
from __future__ import annotations

import matplotlib.pyplot as plt


def sweep_figure(sweep):
    """Prefill latency vs prompt length, decode step vs batch, throughput vs batch (one row)."""
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(12, 3.4))
    for bs, g in sweep.groupby("batch"):
        a.errorbar(g["seq"], g["prefill_ms"], yerr=g["prefill_spread_ms"] / 2, marker="o", capsize=3, label=f"batch {bs}")
    a.set_xscale("log", base=2)
    a.set_xlabel("prompt tokens")
    a.set_ylabel("prefill latency (ms)")
    a.set_title("prefill grows with tokens x batch")
    a.legend(fontsize=7)
    for s, g in sweep.groupby("seq"):
        b.errorbar(g["batch"], g["decode_ms"], yerr=g["decode_spread_ms"] / 2, marker="s", capsize=3, label=f"context {s}")
        c.plot(g["batch"], g["batch"] / (g["decode_ms"] / 1e3), marker="^", label=f"context {s}")
    b.set_xscale("log", base=2)
    b.set_xlabel("batch size")
    b.set_ylabel("one decode step (ms)")
    b.set_title("a decode step barely grows with batch")
    b.set_ylim(bottom=0)
    b.legend(fontsize=7)
    c.set_xscale("log", base=2)
    c.set_xlabel("batch size")
    c.set_ylabel("decode tokens / s")
    c.set_title("so throughput grows with batch")
    c.set_ylim(bottom=0)
    c.legend(fontsize=7)
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
