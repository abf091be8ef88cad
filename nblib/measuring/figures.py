"""Static figures of notebook 00 (each returns its matplotlib Figure), in the suite's style (`nblib.style`)."""
from __future__ import annotations

import matplotlib.pyplot as plt

from .. import style


def sweep_figure(sweep):
    """Prefill latency vs prompt length, decode step vs batch, throughput vs batch (one row).

    Points are medians of interleaved repeats with their spread (max - min) as error bars; a point still noisy
    after its re-measurements (the sweep's `noisy` column) is ringed in red and named in the legend. The
    titles state the measured growth, computed from the sweep.
    """
    import numpy as np

    noisy = sweep["noisy"].astype(bool) if "noisy" in sweep else None
    s0 = int(min(sweep["seq"]))
    b0, b1 = int(min(sweep["batch"])), int(max(sweep["batch"]))
    d0 = float(sweep[(sweep["batch"] == b0) & (sweep["seq"] == s0)]["decode_ms"].iloc[0])
    d1 = float(sweep[(sweep["batch"] == b1) & (sweep["seq"] == s0)]["decode_ms"].iloc[0])
    with style.context():
        fig, (a, b, c) = plt.subplots(1, 3, figsize=(13, 3.9))
        for bs, g in sweep.groupby("batch"):
            a.errorbar(g["seq"], g["prefill_ms"], yerr=g["prefill_spread_ms"] / 2, marker="o", capsize=3,
                       label=f"batch {bs}")
        for s, g in sweep.groupby("seq"):
            b.errorbar(g["batch"], g["decode_ms"], yerr=g["decode_spread_ms"] / 2, marker="s", capsize=3,
                       label=f"context {s}")
            c.plot(g["batch"], g["batch"] / (g["decode_ms"] / 1e3), marker="^", label=f"context {s}")
        if noisy is not None and noisy.any():
            bad = sweep[noisy]
            ring = dict(s=140, facecolors="none", edgecolors="red", linewidths=1.8, zorder=5)
            a.scatter(bad["seq"], bad["prefill_ms"], label="noisy after re-measuring", **ring)
            b.scatter(bad["batch"], bad["decode_ms"], label="noisy after re-measuring", **ring)
        style.label_axes(a, "prompt tokens", "prefill latency (ms)", "prefill grows with tokens x batch",
                         log2x=True, integer_x=True)
        style.label_axes(b, "batch size", "one decode step (ms)",
                         f"a decode step: {d1 / d0:.1f}x the time\nfor {b1 / b0:.0f}x the batch (context {s0})",
                         log2x=True, integer_x=True, from_zero=True)
        style.label_axes(c, "batch size", "decode tokens / s",
                         f"so throughput grows {np.divide(b1 / d1, b0 / d0):.1f}x\n(context {s0})",
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


def roofline_figure(roof, limits, prefill=None):
    """The roofline (FLOP/s against FLOPs per byte read, log-log) with the measured decode (and prefill) points."""
    import numpy as np

    with style.context():
        fig, ax = plt.subplots(figsize=(7, 4.2))
        lo = min(0.1, float(roof["FLOPs / byte"].min()) / 2)
        hi = max(limits.ridge_flops_per_byte * 20, float(roof["FLOPs / byte"].max()) * 2)
        x = np.geomspace(lo, hi, 200)
        ax.plot(x, np.minimum(limits.matmul_flops_per_s, limits.read_bytes_per_s * x) / 1e9, "k-", lw=1.5,
                label=f"bound: {limits.read_bytes_per_s / 1e9:.0f} GB/s x intensity, capped at "
                      f"{limits.matmul_flops_per_s / 1e9:.0f} GFLOP/s")
        for ctx, g in roof.groupby("context"):
            ax.plot(g["FLOPs / byte"], g["achieved GFLOP/s"], marker="o", label=f"decode step, context {ctx}")
            if ctx == roof["context"].min():      # batch labels once, on the shortest context's points
                for b, xv, yv in zip(g["batch"], g["FLOPs / byte"], g["achieved GFLOP/s"], strict=True):
                    ax.annotate(f"batch {b}", (xv, yv), textcoords="offset points", xytext=(-8, 8),
                                fontsize="x-small", ha="right")
        if prefill is not None:
            ax.plot(prefill["FLOPs / byte"], prefill["achieved GFLOP/s"], "s", color="0.4", label="prefill")
        ax.axvline(limits.ridge_flops_per_byte, color="0.6", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        style.label_axes(ax, "arithmetic intensity (FLOPs per byte read)", "achieved GFLOP/s",
                         "decode at batch 1 sits far left: memory-bound")
        style.legend_if_many(ax, fontsize="x-small", loc="lower right")
        fig.tight_layout()
    return fig
