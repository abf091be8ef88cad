"""Notebook 02's slider panel and figures: tau and expert size over precomputed D2DMoE sweeps.

The sweeps (`bench.sweep`, one per expert count, shipped in data/d2dmoe/sweep_<model>.json)
are the expensive part; a slider move looks a point up and moves the artists: accuracy
against FFN FLOPs for dynamic-k (this expert size), static top-k and dense, the current
tau marked, and the share of experts each layer runs at that tau. Given measured latencies
(`latency`: per expert size, points {tau, ffn_flops_ratio, ffn_time_ratio, request_ratio} from
`nblib.d2dmoe.latency`), a third plot shows the measured FFN and whole-request time against FFN
FLOPs with the current tau marked. CSS hooks `nb02-*`.
"""
from __future__ import annotations

import numpy as np

from .. import style
from ..panel import SliderPanel


def sweep_points(sweeps: dict, size: int, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """(FFN FLOPs %, accuracy %) of one rule's points for one expert size, in increasing FLOPs."""
    s = sweeps[size]
    pts = sorted(s[rule], key=lambda p: p["ffn_flops_ratio"])
    return (np.array([p["ffn_flops_ratio"] * 100 for p in pts]), np.array([p["accuracy"] * 100 for p in pts]))


class D2DMoEPanel(SliderPanel):
    """Sliders for tau and expert size over precomputed sweeps: accuracy vs FFN FLOPs, per-layer expert use."""

    prefix = "nb02"
    figsize = (11, 3.8)

    def __init__(self, sweeps: list[dict], tau: float = 0.2, size: int | None = None, title: str = "MiniLM",
                 latency: dict | None = None):
        import ipywidgets as W

        self.latency = {int(k): sorted(v, key=lambda p: p["ffn_flops_ratio"]) for k, v in (latency or {}).items()}
        if self.latency:
            self.figsize = (15, 3.9)
        self.sweeps = {int(s["expert_size"]): s for s in sweeps}
        self.sizes = sorted(self.sweeps)
        self.taus = sorted({float(p["value"]) for s in sweeps for p in s["dynk"]})
        self.title = title
        size = size or self.sizes[0]
        tau = min(self.taus, key=lambda t: abs(t - tau))
        super().__init__({
            "tau": W.SelectionSlider(options=self.taus, value=tau, description="tau"),
            "size": W.SelectionSlider(options=self.sizes, value=size, description="expert size"),
        })

    def build(self, fig) -> None:
        """The accuracy/FLOPs curves and the per-layer usage bars."""
        if self.latency:
            ax, ax_t, ax_l = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.5, 1.2, 1]})
            (self.t_ffn,) = ax_t.plot([], [], "o-", color=style.COLORS[3], label="FFN layers / dense")
            (self.t_req,) = ax_t.plot([], [], "s-", color=style.COLORS[4], label="whole request / dense")
            (self.t_cur,) = ax_t.plot([], [], "o", ms=15, mfc="none", mec="crimson", mew=2.5, label="current tau")
            ax_t.plot([0, 105], [0, 1.05], ":", color="0.5", label="time proportional to FLOPs")
            ax_t.axhline(1, color="k", lw=1)
            style.label_axes(ax_t, "FFN FLOPs (% of dense)", "measured time / dense", "one request, measured")
            ax_t.set_xlim(0, 105)
            style.legend_if_many(ax_t, loc="upper left", fontsize="x-small")
            self.ax_t = ax_t
        else:
            ax, ax_l = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.5, 1]})
        self.ax, self.ax_l = ax, ax_l
        (self.dyn_line,) = ax.plot([], [], "o-", label="D2DMoE dynamic-k (tau)", color=style.COLORS[0])
        (self.top_line,) = ax.plot([], [], "s--", label="static top-k (MoEfication rule)", color=style.COLORS[1])
        (self.dense_pt,) = ax.plot([100], [0], "*", ms=16, color="k", label="dense")
        (self.cur,) = ax.plot([0], [0], "o", ms=15, mfc="none", mec="crimson", mew=2.5, label="current tau")
        self.band = ax.axhline(0, color="0.5", ls=":", lw=1.5, label="dense − 1 point")
        style.label_axes(ax, "FFN FLOPs (% of dense)", "accuracy (%)", "accuracy vs FFN compute")
        ax.set_xlim(0, 105)
        style.legend_if_many(ax, loc="lower right", fontsize="small")
        n_layers = len(next(iter(self.sweeps.values()))["dense"]["experts_per_token"])
        self.bars = ax_l.bar(np.arange(n_layers), np.zeros(n_layers), color=style.COLORS[2])
        style.label_axes(ax_l, "layer", "experts run (% of layer's)", "expert use per layer")
        style.integer_axis(ax_l, "x")
        ax_l.set_ylim(0, 100)

    def compute(self, tau: float, size: int) -> dict:
        """The point at (tau, size): accuracy, FLOPs, per-layer share of experts run (pure look-ups)."""
        s = self.sweeps[int(size)]
        p = min(s["dynk"], key=lambda q: abs(float(q["value"]) - float(tau)))
        E = s["n_experts"]
        out = {"tau": float(p["value"]), "size": int(size), "n_experts": E, "accuracy": p["accuracy"] * 100,
               "flops_pct": p["ffn_flops_ratio"] * 100, "dense_accuracy": s["dense"]["accuracy"] * 100,
               "layer_pct": [100 * c / E for c in p["experts_per_token"]],
               "dynk": sweep_points(self.sweeps, size, "dynk"), "topk": sweep_points(self.sweeps, size, "topk"),
               "latency": None}
        lat = self.latency.get(int(size))
        if lat:
            q = min(lat, key=lambda q: abs(float(q["tau"]) - float(p["value"])))
            out["latency"] = {"points": lat, "tau": float(q["tau"]), "flops_pct": 100 * q["ffn_flops_ratio"],
                              "ffn": q["ffn_time_ratio"], "request": q["request_ratio"]}
        return out

    def draw(self, st: dict) -> str:
        """Move the curves, the marker and the bars; return the readout."""
        self.dyn_line.set_data(*st["dynk"])
        self.top_line.set_data(*st["topk"])
        d = st["dense_accuracy"]
        self.dense_pt.set_data([100], [d])
        self.cur.set_data([st["flops_pct"]], [st["accuracy"]])
        self.band.set_ydata([d - 1, d - 1])
        ys = np.concatenate([st["dynk"][1], st["topk"][1], [d]])
        lo = max(0.0, float(np.percentile(ys, 5)) - 5)
        self.ax.set_ylim(lo, max(ys.max(), d) + 2)
        self.ax.set_title(f"{self.title}: accuracy vs FFN compute, {st['n_experts']} experts of {st['size']}")
        for b, v in zip(self.bars, st["layer_pct"], strict=True):
            b.set_height(v)
        text = (f"tau {st['tau']:g} · expert size {st['size']} ({st['n_experts']} experts/layer) → accuracy "
                f"{st['accuracy']:.1f} % (dense {d:.1f} %), FFN FLOPs {st['flops_pct']:.0f} % of dense, "
                f"mean experts run {np.mean(st['layer_pct']):.0f} %")
        if self.latency:
            lat = st["latency"]
            if lat is None:
                for line in (self.t_ffn, self.t_req, self.t_cur):
                    line.set_data([], [])
                self.ax_t.set_title(f"no latency measured for experts of {st['size']}")
            else:
                pts = lat["points"]
                xs = [100 * q["ffn_flops_ratio"] for q in pts]
                self.t_ffn.set_data(xs, [q["ffn_time_ratio"] for q in pts])
                self.t_req.set_data(xs, [q["request_ratio"] for q in pts])
                self.t_cur.set_data([lat["flops_pct"], lat["flops_pct"]], [lat["ffn"], lat["request"]])
                top = max([1.1] + [q["ffn_time_ratio"] for q in pts] + [q["request_ratio"] for q in pts])
                self.ax_t.set_ylim(0, top * 1.05)
                self.ax_t.set_title(f"one request, measured (experts of {st['size']})")
                text += (f" · measured at tau {lat['tau']:g}: FFN time {lat['ffn']:.2f}x dense, whole request "
                         f"{lat['request']:.2f}x")
        return text


def activation_histogram(ax, samples: dict, bins: int = 80) -> None:
    """Histograms (log count) of FFN activation samples, one series per name (e.g. GELU, ReLU, sparsified)."""
    lo = min(float(np.percentile(v, 0.5)) for v in samples.values())
    hi = max(float(np.percentile(v, 99.5)) for v in samples.values())
    edges = np.linspace(lo, hi, bins)
    for name, v in samples.items():
        ax.hist(np.clip(v, lo, hi), bins=edges, histtype="step", lw=2, label=name)
    ax.set_yscale("log")
    style.label_axes(ax, "FFN activation value", "count (log)", "FFN activations")
    style.legend_if_many(ax, fontsize="small")


def token_heatmap(ax, tokens: list[str], counts: np.ndarray, n_experts: int, max_tokens: int = 40) -> None:
    """Experts run per token (rows: layers) for one input, as an image with the word pieces as x labels."""
    c = counts[:, :max_tokens] / n_experts * 100
    im = ax.imshow(c, aspect="auto", cmap="viridis", vmin=0, vmax=100)
    ax.set_xticks(range(c.shape[1]))
    ax.set_xticklabels(tokens[:max_tokens], rotation=60, ha="right", fontsize="medium")   # readable on a projector
    ax.set_yticks(range(c.shape[0]))
    ax.set_ylabel("layer")
    ax.grid(False)
    ax.figure.colorbar(im, ax=ax, label="experts run (%)", pad=0.01)
