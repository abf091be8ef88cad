"""Notebook 04's figures and its threshold slider over the measured frontier."""
from __future__ import annotations

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from .. import style
from ..panel import SliderPanel
from . import bench

FLOP_PARTS = ("small_prefill", "small_decode", "large_prefill", "large_decode")
PART_LABELS = ("small: read", "small: write", "large: read (hand-over)", "large: write")
ROUTE_CMAP = ListedColormap(["#d9d9d9", style.COLORS[0], style.COLORS[3]])  # none, small, large


def baseline_methods(fr) -> list[str]:
    """The methods on the frontier plot, STEER first."""
    return [m for m in dict.fromkeys(fr.points.method)]


def route_matrix(fr, t: int, width: int | None = None) -> np.ndarray:
    """Worked problems x steps: 0 no step, 1 small wrote it, 2 large wrote it (at threshold index t)."""
    steps = fr.worked[t]
    width = width or max(len(s) for ws in fr.worked.values() for s in ws)
    m = np.zeros((len(steps), width))
    for i, st in enumerate(steps):
        for k, s in enumerate(st[:width]):
            m[i, k] = 2 if s["author"] == "large" else 1
    return m


def plot_frontier(ax, fr, rel: bool = True) -> dict:
    """Accuracy against mean FLOPs per problem (relative to large-only) for every method; returns the lines."""
    big = bench.large_point(fr)["flops"]
    lines = {}
    for k, m in enumerate(baseline_methods(fr)):
        pts = bench.method_points(fr, m)
        x = pts.flops / big if rel else pts.flops / 1e6
        style_ = dict(marker="o", ms=3, lw=2.2 if m == "STEER" else 1.3, color=style.COLORS[k % len(style.COLORS)])
        if len(pts) == 1:
            style_.update(marker="s", ms=8, lw=0)
        (lines[m],) = ax.plot(x, pts.accuracy, label=m, **style_)
    lp = bench.large_point(fr)
    ax.axhline(lp["accuracy"] - 0.01, color="0.5", lw=0.8, ls=":", label="large-only − 1 pt")
    style.label_axes(ax, "FLOPs per problem / large-only" if rel else "MFLOPs per problem", "answer accuracy",
                     "accuracy vs FLOPs", loc="lower right", fontsize="x-small")
    return lines


class SteerPanel(SliderPanel):
    """One slider, the threshold notch: moves STEER's point on the frontier and redraws the routed steps."""

    prefix = "nb04"
    figsize = (12.5, 3.8)
    blit = True

    def __init__(self, fr, notch: int | None = None):
        import ipywidgets as W

        self.fr = fr
        self.pts = bench.method_points(fr, "STEER")
        self.big = bench.large_point(fr)
        n = len(self.pts)
        super().__init__({"threshold": W.IntSlider(value=n // 2 if notch is None else notch, min=0, max=n - 1,
                                                   step=1, description="notch")})

    def build(self, fig) -> None:
        """The frontier with a moving point, the worked problems' routes, and the FLOPs split."""
        ax_f, ax_r, ax_b = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.25, 1.1, 1.0]})
        self.ax_f, self.ax_r, self.ax_b = ax_f, ax_r, ax_b
        plot_frontier(ax_f, self.fr)
        (self.dot,) = ax_f.plot([1], [1], "o", ms=13, mfc="none", mec="k", mew=2)
        m = route_matrix(self.fr, 0)
        self.img = ax_r.imshow(m, cmap=ROUTE_CMAP, vmin=0, vmax=2, aspect="auto", interpolation="nearest")
        ax_r.set_xticks(range(m.shape[1]), [str(k + 1) for k in range(m.shape[1])])
        ax_r.set_yticks(range(m.shape[0]), [f"p{i}" for i in range(m.shape[0])])
        ax_r.grid(False)
        style.label_axes(ax_r, "step", "worked problem", "who wrote each step (blue small, orange large)")
        parts = [self.pts[p].iloc[-1] for p in FLOP_PARTS]
        self.bars = ax_b.barh(PART_LABELS, [0.0] * 4, color=[style.COLORS[0], style.COLORS[0], style.COLORS[3],
                                                              style.COLORS[3]])
        for b, h in zip(self.bars, ("//", "", "//", ""), strict=False):
            b.set_hatch(h)
        self.ref = ax_b.scatter(np.array(parts) / 1e6, range(4), marker="|", s=300, color="k", label="large-only")
        top = max(max(self.pts[p].max() for p in FLOP_PARTS) / 1e6 * 1.1, 1e-3)
        ax_b.set_xlim(0, top)
        ax_b.invert_yaxis()
        style.label_axes(ax_b, "MFLOPs per problem", "", "where the FLOPs go", loc="lower right",
                         fontsize="x-small")
        return [self.dot, self.img, *self.bars]

    def compute(self, threshold: int) -> dict:
        """STEER's measured point at this notch of the grid (a table look-up)."""
        row = self.pts.iloc[int(threshold)].to_dict()
        row["saved"] = 1.0 - row["flops"] / self.big["flops"]
        row["routes"] = route_matrix(self.fr, int(threshold))
        return row

    def draw(self, st: dict) -> str:
        """Move the point, recolour the routes, resize the bars; return the readout."""
        self.dot.set_data([st["flops"] / self.big["flops"]], [st["accuracy"]])
        self.img.set_data(st["routes"])
        for b, p in zip(self.bars, FLOP_PARTS, strict=False):
            b.set_width(st[p] / 1e6)
        return (f"notch {int(st['t'])} · τ = {st['threshold']:.4g} · large writes {st['large_share']:.0%} of steps · "
                f"accuracy {st['accuracy']:.3f} (large-only {self.big['accuracy']:.3f}) · "
                f"FLOPs {st['flops'] / 1e6:,.0f} M ({st['saved']:+.0%} saved vs large-only)")


def calibration_figure(fr, bins: int = 30) -> Figure:
    """The pool of raw step confidences (valid vs wrong steps), the fitted mixture and its posterior."""
    from scipy.stats import norm

    fig = Figure(figsize=(11, 3.4), dpi=90)
    ax, ax2 = fig.subplots(1, 2)
    s = np.asarray(fr.pool_scores)
    v = np.asarray(fr.pool_valid)
    edges = np.linspace(s.min(), s.max(), bins + 1)
    ax.hist([s[v], s[~v]], edges, stacked=True, density=True, color=[style.COLORS[2], style.COLORS[3]],
            label=["valid steps", "wrong steps"])
    c = fr.calibrator
    xs = np.linspace(s.min(), s.max(), 300)
    for k, name in enumerate(("low", "high")):
        ax.plot(xs, c.weights_[k] * norm.pdf(xs, c.means_[k], c.stds_[k]), lw=2, color=f"C{k + 4}",
                label=f"GMM {name} component")
    style.label_axes(ax, "raw confidence (min token prob. of the drafted step)", "density",
                     "calibration pool (unlabeled val problems)", loc="upper left", fontsize="x-small")
    pi = c.posterior(s)
    order = np.argsort(pi)
    groups = np.array_split(order, 10)
    mp = [pi[g].mean() for g in groups]
    acc = [v[g].mean() for g in groups]
    ax2.plot(xs, c.posterior(xs), color="k", lw=1.5, label="posterior π(c)")
    ax2.plot([s[g].mean() for g in groups], acc, "o", color=style.COLORS[2], label="share valid (deciles of π)")
    ax2.plot([s[g].mean() for g in groups], mp, "x", color="k", label="mean π (same deciles)")
    style.label_axes(ax2, "raw confidence", "probability", "posterior vs step correctness", loc="upper left",
                     fontsize="x-small")
    fig.tight_layout()
    return fig


def frontier_figure(fr, fr_long=None) -> Figure:
    """The frontier (relative FLOPs) and the FLOPs split along STEER's grid: why prefill caps the savings."""
    fig = Figure(figsize=(12, 3.8), dpi=90)
    axes = fig.subplots(1, 3 if fr_long is not None else 2)
    plot_frontier(axes[0], fr)
    pts = bench.method_points(fr, "STEER")
    big = bench.large_point(fr)["flops"]
    bottom = np.zeros(len(pts))
    for p, lab, col, h in zip(FLOP_PARTS, PART_LABELS, (0, 0, 3, 3), ("//", "", "//", ""), strict=False):
        axes[1].bar(pts.large_share, pts[p] / big, width=0.03, bottom=bottom, color=style.COLORS[col], hatch=h,
                    label=lab)
        bottom += pts[p].to_numpy() / big
    axes[1].axhline(1.0, color="k", lw=0.8, ls="--", label="large-only")
    style.label_axes(axes[1], "share of steps the large model writes", "FLOPs / large-only",
                     "STEER's FLOPs by model and kind", loc="upper left", fontsize="x-small")
    axes[1].set_ylim(0, 1.45)
    if fr_long is not None:
        plot_frontier(axes[2], fr_long)
        axes[2].set_title(f"{fr_long.config.n_steps}-step problems (longer than trained)")
    fig.tight_layout()
    return fig


def worked_figure(fr, problem: int, t: int) -> Figure:
    """One worked problem at one notch: each step's routing value, who wrote it, and what it cost."""
    steps = fr.worked[t][problem]
    tau = fr.thresholds[t]
    fig = Figure(figsize=(11, 3.2), dpi=90)
    ax, ax2 = fig.subplots(1, 2)
    k = np.arange(len(steps))
    vals = [np.nan if s["value"] is None else s["value"] for s in steps]
    cols = [style.COLORS[3] if s["author"] == "large" else style.COLORS[0] for s in steps]
    ax.bar(k, vals, color=cols)
    ax.axhline(tau, color="k", ls="--", lw=1, label=f"τ = {tau:.3g}")
    ax.set_xticks(k, [s["text"].strip() or "·" for s in steps], rotation=30, fontsize="x-small")
    style.label_axes(ax, "", "posterior π (before the step)", "blue: small keeps it · orange: handed over",
                     loc="lower left", fontsize="x-small")
    ax.set_ylim(0, 1.05)
    fl_s = np.array([s["flops"].get("small", 0) for s in steps]) / 1e6
    fl_l = np.array([s["flops"].get("large", 0) for s in steps]) / 1e6
    ax2.bar(k, fl_s, color=style.COLORS[0], label="small model")
    ax2.bar(k, fl_l, bottom=fl_s, color=style.COLORS[3], label="large model (incl. reading the context)")
    for kk, s in enumerate(steps):
        if s["handover_tokens"]:
            ax2.text(kk, fl_s[kk] + fl_l[kk], f"reads {s['handover_tokens']} tok", ha="center", va="bottom",
                     fontsize="x-small")
    ax2.set_xticks(k, [str(x + 1) for x in k])
    style.label_axes(ax2, "step", "MFLOPs", "cost of each step", loc="upper right", fontsize="x-small")
    fig.tight_layout()
    return fig
