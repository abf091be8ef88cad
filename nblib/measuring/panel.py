"""Slider panels: precompute the expensive part, then every move re-evaluates a cheap policy.

A panel keeps one matplotlib figure (Agg, no pyplot) and updates its artists in
place; the PNG goes into an `ipywidgets.Image`. `panel.last_update_ms` records
how long the last move took (policy + redraw), so the notebook can show it.
"""
from __future__ import annotations

import time

import numpy as np
from matplotlib.figure import Figure

from ..panel import figure_png
from . import sweep as sweep_mod


class CostPanel:
    """Sliders for batch size, prompt length and new tokens over a measured cost sweep."""

    def __init__(self, sweep, batch: int | None = None, seq: int | None = None, new_tokens: int = 64,
                 max_new_tokens: int = 512):
        import ipywidgets as W

        self.sweep = sweep
        self.batches = sorted(int(b) for b in sweep["batch"].unique())
        self.seqs = sorted(int(s) for s in sweep["seq"].unique())
        self.batch = W.SelectionSlider(options=self.batches, value=batch or self.batches[0], description="batch",
                                       continuous_update=False)
        self.seq = W.SelectionSlider(options=self.seqs, value=seq or self.seqs[0], description="prompt tok",
                                     continuous_update=False)
        self.new = W.IntSlider(value=new_tokens, min=1, max=max_new_tokens, step=1, description="new tok",
                               continuous_update=False)
        for w, cls in ((self.batch, "cost-batch"), (self.seq, "cost-seq"), (self.new, "cost-new")):
            w.add_class(cls)
            w.observe(self._on_change, names="value")
        self.label = W.Label()
        self.label.add_class("cost-label")
        self.image = W.Image(format="png")
        self.image.add_class("cost-plot")
        self.last_update_ms = float("nan")
        self._build_figure()
        self.update()
        self.widget = W.VBox([W.HBox([self.batch, self.seq, self.new]), self.label, self.image])

    def _build_figure(self) -> None:
        fig = Figure(figsize=(10, 3.2), dpi=72)
        self.fig = fig
        ax_t, ax_thr, ax_mem = fig.subplots(1, 3)
        self.ax_t, self.ax_thr, self.ax_mem = ax_t, ax_thr, ax_mem
        self.bars = ax_t.bar(["prefill", "decode"], [0, 0], color=["tab:blue", "tab:orange"])
        ax_t.set_ylabel("latency (s)")
        ax_t.set_title("one request")
        (self.thr_line,) = ax_thr.plot(self.batches, np.ones(len(self.batches)), "o-", color="tab:green")
        (self.thr_dot,) = ax_thr.plot([0], [0], "o", ms=12, mfc="none", mec="k", mew=2)
        ax_thr.set_xscale("log", base=2)
        ax_thr.set_xlabel("batch size")
        ax_thr.set_ylabel("generated tokens / s")
        ax_thr.set_title("throughput")
        (self.mem_line,) = ax_mem.plot(self.batches, np.ones(len(self.batches)), "s-", label="prefill working memory (measured)")
        (self.kv_line,) = ax_mem.plot(self.batches, np.ones(len(self.batches)), "^--", label="KV cache (analytic)")
        ax_mem.set_xscale("log", base=2)
        ax_mem.set_xlabel("batch size")
        ax_mem.set_ylabel("MB")
        ax_mem.set_yscale("log")
        ax_mem.set_title("memory")
        ax_mem.legend(fontsize=7, loc="center right")
        fig.tight_layout()

    def state(self) -> dict:
        """The predicted cost at the sliders' current values (pure table look-ups)."""
        return sweep_mod.predict(self.sweep, self.batch.value, self.seq.value, self.new.value)

    def update(self) -> None:
        """Re-evaluate the policy at the current slider values and redraw the figure."""
        t0 = time.perf_counter()
        b, s, n = self.batch.value, self.seq.value, self.new.value
        st = self.state()
        for bar, v in zip(self.bars, (st["prefill_ms"] / 1e3, st["decode_ms"] / 1e3)):
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
        self.ax_mem.set_ylim(lo / 2, hi * 2)
        self.image.value = figure_png(self.fig)
        self.label.value = (f"batch {b} · prompt {s} tok · {n} new tok → {st['total_ms'] / 1e3:.2f} s, "
                            f"{st['tokens_per_s']:.0f} tok/s, {st['gflops']:.1f} GFLOPs")
        self.last_update_ms = (time.perf_counter() - t0) * 1e3

    def _on_change(self, change) -> None:
        self.update()

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
