"""Notebook 00's slider panel: batch size, prompt length and new tokens over a measured cost sweep.

The sweep (the expensive part) is measured once; a slider move only looks its
points up (`sweep.predict`) and moves the figure's artists. The widget
machinery (readout, image, observers, `set`, timing, CSS hooks `nb00-*`) is
`nblib.panel.SliderPanel`'s.
"""
from __future__ import annotations

import numpy as np

from .. import style
from ..panel import SliderPanel
from . import sweep as sweep_mod


class CostPanel(SliderPanel):
    """Sliders for batch size, prompt length and new tokens over a measured cost sweep."""

    prefix = "nb00"
    figsize = (11, 3.6)

    def __init__(self, sweep, batch: int | None = None, seq: int | None = None, new_tokens: int = 64,
                 max_new_tokens: int = 512):
        import ipywidgets as W

        self.sweep = sweep
        self.batches = sorted(int(b) for b in sweep["batch"].unique())
        self.seqs = sorted(int(s) for s in sweep["seq"].unique())
        super().__init__({
            "batch": W.SelectionSlider(options=self.batches, value=batch or self.batches[0], description="batch"),
            "seq": W.SelectionSlider(options=self.seqs, value=seq or self.seqs[0], description="prompt tok"),
            "new": W.IntSlider(value=new_tokens, min=1, max=max_new_tokens, step=1, description="new tok"),
        })

    def build(self, fig) -> None:
        """The latency bars, the throughput curve over batch sizes, and the memory curves."""
        ax_t, ax_thr, ax_mem = fig.subplots(1, 3)
        self.ax_t, self.ax_thr, self.ax_mem = ax_t, ax_thr, ax_mem
        self.bars = ax_t.bar(["prefill", "decode"], [0, 0], color=style.COLORS[:2])
        style.label_axes(ax_t, ylabel="latency (s)", title="one request")
        ax_t.grid(axis="x", visible=False)
        ones = np.ones(len(self.batches))
        (self.thr_line,) = ax_thr.plot(self.batches, ones, "o-", color=style.COLORS[2])
        (self.thr_dot,) = ax_thr.plot([0], [0], "o", ms=12, mfc="none", mec="k", mew=2)
        style.label_axes(ax_thr, "batch size", "generated tokens / s", "throughput", log2x=True, integer_x=True)
        (self.mem_line,) = ax_mem.plot(self.batches, ones, "s-", label="prefill working memory (measured)")
        (self.kv_line,) = ax_mem.plot(self.batches, ones, "^--", label="KV cache (analytic)")
        ax_mem.set_yscale("log")
        style.label_axes(ax_mem, "batch size", "MB", "memory", log2x=True, integer_x=True, loc="upper left",
                         fontsize="small")

    def compute(self, batch: int, seq: int, new: int) -> dict:
        """The predicted cost at these slider values (pure table look-ups)."""
        return sweep_mod.predict(self.sweep, batch, seq, new)

    def draw(self, st: dict) -> str:
        """Move the bars, the throughput marker and the memory curves; return the one-line readout."""
        b, s, n = (self.values()[k] for k in ("batch", "seq", "new"))
        for bar, v in zip(self.bars, (st["prefill_ms"] / 1e3, st["decode_ms"] / 1e3), strict=True):
            bar.set_height(v)
        self.ax_t.set_ylim(0, max(st["total_ms"] / 1e3 * 1.15, 1e-3))
        per_batch = [sweep_mod.predict(self.sweep, bb, s, n) for bb in self.batches]
        thr = [p["tokens_per_s"] for p in per_batch]
        self.thr_line.set_ydata(thr)
        self.thr_dot.set_data([b], [st["tokens_per_s"]])
        self.ax_thr.set_ylim(0, max(thr) * 1.15)
        work = [max(p["work_mb"], 0.1) for p in per_batch]  # log axis: floor at 0.1 MB
        self.mem_line.set_ydata(work)
        kv = [p["kv_cache_mb"] for p in per_batch]
        self.kv_line.set_ydata(kv)
        lo, hi = min(min(kv), min(work)), max(max(kv), max(work))
        self.ax_mem.set_ylim(lo / 2, hi * 8)  # headroom for the legend
        return (f"batch {b} · prompt {s} tok · {n} new tok → {st['total_ms'] / 1e3:.2f} s, "
                f"{st['tokens_per_s']:.0f} tok/s, {st['gflops']:.1f} GFLOPs")
