"""Notebook 04's figures and its threshold slider over the measured frontier."""
from __future__ import annotations

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from .. import style
from ..panel import SliderPanel
from . import accounting as acc
from . import bench

ROUTE_CMAP = ListedColormap(["#d9d9d9", style.COLORS[0], style.COLORS[3]])  # none, small, large
LENS = "price lens"                                      # the panel's fifth view: tokens priced at a ratio
RATIOS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)      # large / small price per output token
UNITS = {"generated_flops": "FLOPs", "flops_with_reads": "FLOPs", "latency_cpu": "ms", "latency_gpu": "ms"}


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


SHORT = {"generated_flops": "generated-token FLOPs (reads free)", "flops_with_reads": "FLOPs with reads",
         "latency_cpu": "latency: this CPU (measured)", "latency_gpu": "latency: GPU roofline (modelled)"}


def accounting_label(fr, accounting: str, ratio: float | None = None) -> str:
    """The name of a view, with the latency profile's provenance ('measured: ...' or 'modelled: ...')."""
    if accounting == LENS:
        return f"price lens: large token = {ratio:g}x small, inputs 1/4 of outputs"
    if accounting.startswith("latency"):
        return fr.profiles[accounting].label
    return acc.LABELS[accounting]


def cost_table(fr, accounting: str, ratio: float = 20.0):
    """Every (method, threshold)'s mean cost under a view, with `rel` = its share of large-only's cost."""
    if accounting == LENS:
        c = bench.priced(fr, bench.ratio_sheet(fr, ratio))
    else:
        c = bench.costs(fr, accounting)
    big = float(c[c.method == "STEER"].sort_values("t")["cost"].iloc[-1])
    c = c.merge(fr.points[["method", "t", "accuracy", "large_share", "threshold"]], on=["method", "t"])
    c["rel"] = c["cost"] / big
    return c


def plot_frontier(ax, fr, accounting: str = "generated_flops", ratio: float = 20.0, table=None) -> dict:
    """Accuracy against cost per problem (share of large-only's) for every method and the mixing line."""
    c = cost_table(fr, accounting, ratio) if table is None else table
    lines = {}
    for k, m in enumerate(baseline_methods(fr)):
        pts = c[c.method == m].sort_values("t")
        style_ = dict(marker="o", ms=3, lw=2.2 if m == "STEER" else 1.2, color=style.COLORS[k % len(style.COLORS)])
        if len(pts) == 1:
            style_.update(marker="s", ms=8, lw=0)
        (lines[m],) = ax.plot(pts.rel, pts.accuracy, label=m, **style_)
    st = c[c.method == "STEER"].sort_values("t")
    (lines["mix"],) = ax.plot(st.rel.iloc[[0, -1]], st.accuracy.iloc[[0, -1]], color="0.35", lw=1, ls="--",
                              label="mix small-only / large-only per query")
    lines["target"] = ax.axhline(st.accuracy.iloc[-1] - 0.01, color="0.5", lw=0.8, ls=":", label="large-only − 1 pt")
    style.label_axes(ax, f"cost per problem / large-only ({accounting.replace('_', ' ')})", "answer accuracy",
                     "accuracy vs cost", loc="lower right", fontsize="x-small")
    return lines


class SteerPanel(SliderPanel):
    """The threshold notch, the cost accounting and the price ratio: STEER's point on every method's frontier."""

    prefix = "nb04"
    figsize = (13, 4.0)

    def __init__(self, fr, notch: int | None = None, accounting: str = "generated_flops", ratio: float = 20):
        import ipywidgets as W

        self.fr = fr
        self.pts = bench.method_points(fr, "STEER")
        self.big = bench.large_point(fr)
        self.tables: dict = {}
        n = len(self.pts)
        options = [(a.replace("_", " "), a) for a in acc.ACCOUNTINGS] + [(LENS, LENS)]
        super().__init__({
            "threshold": W.IntSlider(value=n // 2 if notch is None else notch, min=0, max=n - 1, step=1,
                                     description="notch"),
            "accounting": W.Dropdown(options=options, value=accounting, description="cost"),
            "ratio": W.SelectionSlider(options=list(RATIOS), value=ratio, description="price ratio"),
        })

    def table(self, accounting: str, ratio: float):
        """The cost table of a view (memoised: a slider move is a look-up)."""
        key = (accounting, ratio if accounting == LENS else None)
        if key not in self.tables:
            self.tables[key] = cost_table(self.fr, accounting, ratio)
        return self.tables[key]

    def build(self, fig) -> None:
        """The frontier with a moving point, the worked problems' routes, and the cost by model."""
        self.ax_f, self.ax_r, self.ax_b = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.4, 1.0, 0.9]})
        self.lines = plot_frontier(self.ax_f, self.fr, "generated_flops")
        handles, labels = self.ax_f.get_legend_handles_labels()
        self.ax_f.get_legend().remove()
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize="x-small", frameon=False)
        (self.dot,) = self.ax_f.plot([1], [1], "o", ms=13, mfc="none", mec="k", mew=2)
        m = route_matrix(self.fr, 0)
        self.img = self.ax_r.imshow(m, cmap=ROUTE_CMAP, vmin=0, vmax=2, aspect="auto", interpolation="nearest")
        self.ax_r.set_xticks(range(m.shape[1]), [str(k + 1) for k in range(m.shape[1])])
        self.ax_r.set_yticks(range(m.shape[0]), [f"p{i}" for i in range(m.shape[0])])
        self.ax_r.grid(False)
        style.label_axes(self.ax_r, "step", "worked problem", "who wrote each step (blue small, orange large)")
        self.bars = self.ax_b.barh([0, 1], [0.0, 0.0], color=[style.COLORS[0], style.COLORS[3]])
        self.ref = self.ax_b.scatter([0, 0], [0, 1], marker="|", s=300, color="k", label="large-only", zorder=3)
        self.ax_b.set_yticks([0, 1], ["small", "large"])
        self.ax_b.set_ylim(1.6, -0.6)
        style.label_axes(self.ax_b, "cost per problem", "", "where the cost goes (| large-only)")
        fig.tight_layout(rect=(0, 0.1, 1, 1))

    def compute(self, threshold: int, accounting: str, ratio: float) -> dict:
        """STEER's point at this notch under this view, and the table of every method (look-ups)."""
        tab = self.table(accounting, ratio)
        st = tab[tab.method == "STEER"].sort_values("t").reset_index(drop=True)
        row = st.iloc[int(threshold)].to_dict()
        big = st.iloc[-1].to_dict()
        mix = st.rel.iloc[0] + (row["accuracy"] - st.accuracy.iloc[0]) / max(
            st.accuracy.iloc[-1] - st.accuracy.iloc[0], 1e-12) * (st.rel.iloc[-1] - st.rel.iloc[0])
        return {**row, "big": big, "table": tab, "accounting": accounting, "ratio": ratio, "mix_rel": float(mix),
                "routes": route_matrix(self.fr, int(threshold))}

    def draw(self, st: dict) -> str:
        """Move every method's line to the view, move the point, recolour the routes, resize the bars."""
        tab, ax = st["table"], self.ax_f
        for m, line in self.lines.items():
            if m in ("mix", "target"):
                continue
            pts = tab[tab.method == m].sort_values("t")
            line.set_data(pts.rel.to_numpy(), pts.accuracy.to_numpy())
        sp = tab[tab.method == "STEER"].sort_values("t")
        self.lines["mix"].set_data(sp.rel.iloc[[0, -1]].to_numpy(), sp.accuracy.iloc[[0, -1]].to_numpy())
        self.dot.set_data([st["rel"]], [st["accuracy"]])
        ax.relim()
        ax.autoscale_view()
        ax.set_xlabel(f"cost per problem / large-only ({st['accounting'].replace('_', ' ')})")
        ax.set_title(accounting_label(self.fr, st["accounting"], st["ratio"]), fontsize="x-small")
        self.img.set_data(st["routes"])
        unit = UNITS.get(st["accounting"], "")
        scale = 1e3 if unit == "ms" else (1e-6 if unit == "FLOPs" else 1.0)
        shown = "ms" if unit == "ms" else ("MFLOPs" if unit == "FLOPs" else "price (small output token = 1)")
        vals = [st["small"] * scale, st["large"] * scale]
        refs = [st["big"]["small"] * scale, st["big"]["large"] * scale]
        for b, v in zip(self.bars, vals, strict=True):
            b.set_width(v)
        self.ref.set_offsets(np.c_[refs, [0, 1]])
        self.ax_b.set_xlim(0, max(max(vals), max(refs), 1e-12) * 1.15)
        self.ax_b.set_xlabel(f"{shown} per problem")
        saved = 1.0 - st["rel"]
        beats = "below" if st["rel"] < st["mix_rel"] - 1e-9 else "not below"
        return (f"notch {int(st['t'])} · large writes {st['large_share']:.0%} of steps · accuracy "
                f"{st['accuracy']:.3f} (large-only {st['big']['accuracy']:.3f}) · cost {st['rel']:.2f}x large-only "
                f"({saved:+.0%} saved) · {beats} the mixing line ({st['mix_rel']:.2f}x at this accuracy) · "
                f"{st['accounting'].replace('_', ' ')}")


def calibration_figure(fr, bins: int = 30) -> Figure:
    """The pool of raw step confidences (valid vs wrong steps), the fitted mixture and its posterior."""
    from scipy.stats import norm

    fig = Figure(figsize=(11, 3.4), dpi=90)
    ax, ax2 = fig.subplots(1, 2)
    keep = np.array([x is not None for x in fr.pool_valid])      # answer lines are not steps
    s = np.asarray(fr.pool_scores)[keep]
    v = np.asarray([bool(x) for x in fr.pool_valid if x is not None])
    edges = np.linspace(s.min(), s.max(), bins + 1)
    ax.hist([s[v], s[~v]], edges, stacked=True, density=True, color=[style.COLORS[2], style.COLORS[3]],
            label=["valid steps", "wrong steps"])
    c = fr.calibrator
    xs = np.linspace(s.min(), s.max(), 300)
    for k, name in enumerate(("low", "high")):
        ax.plot(xs, c.weights_[k] * norm.pdf(xs, c.means_[k], c.stds_[k]), lw=2, color=f"C{k + 4}",
                label=f"GMM {name} component")
    style.label_axes(ax, f"raw confidence ({fr.read})", "density",
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


def accountings_figure(fr) -> Figure:
    """The frontier of every method under each accounting, side by side (the same runs, four price tags)."""
    fig = Figure(figsize=(15, 4.0), dpi=80)
    axes = fig.subplots(1, len(acc.ACCOUNTINGS), sharey=True)
    for ax, a in zip(axes, acc.ACCOUNTINGS, strict=True):
        plot_frontier(ax, fr, a)
        ax.set_title(SHORT[a], fontsize="small")
        if ax is not axes[-1]:
            ax.get_legend().remove()
        ax.set_xlabel("cost / large-only")
    fig.tight_layout()
    fig.text(0.5, -0.02, f"CPU: {fr.profiles['latency_cpu'].note} · GPU: {fr.profiles['latency_gpu'].note}",
             ha="center", fontsize="x-small")
    return fig


def split_figure(fr) -> Figure:
    """STEER's FLOPs along its grid, split into generated tokens and reads by model: why reads cap the saving."""
    fig = Figure(figsize=(7, 3.6), dpi=80)
    ax = fig.subplots()
    per = fr.per_problem[fr.per_problem.method == "STEER"]
    g = per.groupby("t")[["flops_small", "flops_large", "gen_flops_small", "gen_flops_large"]].mean()
    share = bench.method_points(fr, "STEER").large_share.to_numpy()
    big = float(g["flops_small"].iloc[-1] + g["flops_large"].iloc[-1])
    parts = [("small: writes", g.gen_flops_small, 0, ""), ("small: reads", g.flops_small - g.gen_flops_small, 0, "//"),
             ("large: writes", g.gen_flops_large, 3, ""), ("large: reads (hand-overs)", g.flops_large - g.gen_flops_large, 3, "//")]
    bottom = np.zeros(len(g))
    for lab, v, col, h in parts:
        ax.bar(share, v.to_numpy() / big, width=0.02, bottom=bottom, color=style.COLORS[col], hatch=h, label=lab)
        bottom += v.to_numpy() / big
    ax.axhline(1.0, color="k", lw=0.8, ls="--", label="large-only (with reads)")
    style.label_axes(ax, "share of steps the large model writes", "FLOPs / large-only",
                     "STEER's FLOPs: writes and reads by model", loc="upper left", fontsize="x-small")
    ax.set_ylim(0, 1.3)
    fig.tight_layout()
    return fig


def worked_table(fr, problem: int, t: int):
    """One worked problem at one notch: each step's text, author, confidence and cost under every accounting."""
    import pandas as pd

    steps, ledgers = fr.worked[t][problem], fr.worked_ledgers[t][problem]
    rows = []
    for s, row in zip(steps, ledgers, strict=True):
        c = {a: acc.cost(row, a, fr.names, fr.profiles) for a in acc.ACCOUNTINGS}
        rows.append({"step": s["index"] + 1, "text": s["text"].strip(), "author": s["author"],
                     "π before": s["value"], "large reads (tok)": s["handover_tokens"],
                     "generated kFLOPs": c["generated_flops"] / 1e3, "with reads kFLOPs": c["flops_with_reads"] / 1e3,
                     "CPU ms": c["latency_cpu"] * 1e3, "GPU ms (modelled)": c["latency_gpu"] * 1e3})
    return pd.DataFrame(rows)


def raw_threshold(fr, tau: float) -> float:
    """The raw confidence at which the calibrated posterior reaches tau (the routing rule on the raw score)."""
    lo, hi = float(np.min(fr.pool_scores)), float(np.max(fr.pool_scores))
    if tau >= 1.0:
        return float("inf")
    if fr.calibrator.posterior(hi) < tau:
        return hi
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if fr.calibrator.posterior(mid) < tau else (lo, mid)
    return hi


def worked_figure(fr, problem: int, t: int) -> Figure:
    """One worked problem at one notch: each step's raw confidence, who wrote it, and what it cost."""
    steps = fr.worked[t][problem]
    tau = fr.thresholds[t]
    fig = Figure(figsize=(11, 3.2), dpi=90)
    ax, ax2 = fig.subplots(1, 2)
    k = np.arange(len(steps))
    vals = [np.nan if s["score"] is None else s["score"] for s in steps]
    cols = [style.COLORS[3] if s["author"] == "large" else style.COLORS[0] for s in steps]
    ax.bar(k, vals, color=cols)
    c = raw_threshold(fr, tau)
    if np.isfinite(c):
        ax.axhline(c, color="k", ls="--", lw=1, label=f"τ = {tau:.6g} ⇔ confidence {c:.3f}")
    ax.set_xticks(k, [s["text"].strip() or "·" for s in steps], rotation=30, fontsize="x-small")
    style.label_axes(ax, "", f"confidence ({fr.read})", "blue: small keeps it · orange: handed over",
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
