"""Notebook 06's figures and slider panel: budget, alpha and calibration size over cached traces.

Everything expensive is done once: every threshold configuration is run over every query
(`cascade.evaluate`), the S random splits are drawn, and per calibration size the sorted calibration
costs are kept (`cascade.Prepared`). A slider move then re-selects C3PO's thresholds on all S splits
(numpy) and redraws: accuracy vs mean cost with the baselines, the test-cost distribution of one split
with the budget line, and the empirical violation rate against alpha with the bound line.
"""
from __future__ import annotations

import numpy as np

from .. import style
from ..panel import SliderPanel
from . import baselines as BL
from . import guarantee as G
from .cascade import Evaluated, Prepared, evaluate
from .traces import CascadeTraces

ALPHAS = tuple(np.round(np.arange(0.05, 0.51, 0.05), 2))


def budget_options(traces: CascadeTraces, n: int = 24, scale: float = 1e6) -> list[tuple[str, float]]:
    """Slider options (label, budget): geometric steps from just above the cheapest model to the full cascade."""
    lo = float(traces.cost[int(np.argmin(traces.cost.mean(1)))].max())
    hi = float(traces.cost.sum(0).max()) * 1.02
    vals = np.unique(np.round(np.geomspace(lo, hi, n) / scale, 0)) * scale
    return [(f"{v / scale:,.0f}", float(v)) for v in vals]


class C3POPanel(SliderPanel):
    """Sliders for the budget, alpha and the calibration size; C3PO re-fitted on S random splits per move."""

    prefix = "nb06"
    figsize = (14, 4.0)
    blit = True   # axes stay fixed; a move redraws only the markers, lines and the histogram

    def __init__(self, traces: CascadeTraces, budget: float | None = None, alpha: float = 0.1, n_cal: int = 50,
                 n_ss: int = 50, n_splits: int = 200, seed: int = 0, mode: str = "reuse", scale: float = 1e6,
                 unit: str = "MFLOPs", ev: Evaluated | None = None, fixed: float = 0.8):
        import ipywidgets as W

        self.tr, self.mode, self.scale, self.unit = traces, mode, scale, unit
        self.ev = ev if ev is not None else evaluate(traces)
        self.n_ss = n_ss
        q = traces.n_queries
        self.max_cal = max(10, min(200, q - n_ss - 50))
        ss, cal, test = G.splits(q, n_ss, self.max_cal, n_splits, seed)
        self.perm = np.concatenate([ss, cal, test], 1)       # (S, Q): D_ss, then D_cal, then test
        self.prepared: dict[int, Prepared] = {}
        opts = budget_options(traces, scale=scale)
        values = [v for _, v in opts]
        start = values[int(np.argmin(np.abs(np.array(values) - (budget if budget is not None else values[len(values) // 2]))))]
        self.baselines = BL.single_models(traces) + [BL.fixed_vote(traces, fixed)]
        train = np.concatenate([ss[0], cal[0][:n_cal]])
        self.frontier = BL.frugal_frontier(traces, train, self.perm[0, n_ss + n_cal:])
        self.large_cost = float(traces.cost[-1].mean())
        for n in range(10, self.max_cal + 1, 10):       # every calibration size the slider offers, ready
            self.parts(n)
        super().__init__({
            "budget": W.SelectionSlider(options=opts, value=start, description=f"B ({unit})"),
            "alpha": W.FloatSlider(value=alpha, min=0.02, max=0.5, step=0.01, description="alpha",
                                   readout_format=".2f"),
            "n_cal": W.IntSlider(value=n_cal, min=10, max=self.max_cal, step=10, description="|D_cal|"),
        })

    # --- state ------------------------------------------------------------------------------
    def parts(self, n_cal: int):
        """D_ss, D_cal and test index arrays (S, .) for a calibration size, and their Prepared (cached)."""
        n_cal = int(min(max(n_cal, 1), self.max_cal))
        ss = self.perm[:, :self.n_ss]
        cal = self.perm[:, self.n_ss:self.n_ss + n_cal]
        test = self.perm[:, self.n_ss + n_cal:]
        if n_cal not in self.prepared:
            self.prepared[n_cal] = Prepared(self.ev, ss, cal)
        return ss, cal, test, self.prepared[n_cal]

    def compute(self, budget: float, alpha: float, n_cal: int) -> dict:
        """C3PO on every split at these values, the violation curve over alpha, and one split's test costs."""
        ss, cal, test, pre = self.parts(n_cal)
        run = G.run_splits(self.ev, budget, alpha, ss, cal, test, self.mode, pre)
        curve = [G.run_splits(self.ev, budget, a, ss, cal, test, self.mode, pre) for a in ALPHAS]
        t0 = int(run.t[0])
        costs0 = self.ev.cost[t0, test[0]] if t0 >= 0 else np.array([])
        ok = run.feasible
        exits = (np.bincount(self.ev.exit[run.t[ok]].ravel(), minlength=self.tr.n_models) if ok.any()
                 else np.zeros(self.tr.n_models, int))
        return {"accuracy": float(np.nanmean(run.accuracy)) if ok.any() else float("nan"),
                "mean_cost": float(np.nanmean(run.mean_cost)) if ok.any() else float("nan"),
                "violation": run.violation, "slack": run.slack(), "infeasible": run.infeasible,
                "curve": [(c.violation, c.slack()) for c in curve], "costs0": costs0,
                "tau0": self.ev.taus[t0] if t0 >= 0 else None, "exit_share": exits / max(exits.sum(), 1),
                "budget": float(budget), "alpha": float(alpha), "n_cal": int(n_cal)}

    # --- figure -----------------------------------------------------------------------------
    def build(self, fig) -> list:
        """Accuracy vs cost (baselines fixed), the test-cost histogram, the violation-vs-alpha curve."""
        ax_a, ax_h, ax_v = fig.subplots(1, 3)
        self.ax_a, self.ax_h, self.ax_v = ax_a, ax_h, ax_v
        s = self.scale
        markers = {"single": "s", "sc": "D", "fixed": "^"}
        for i, r in enumerate(self.baselines):
            ax_a.plot(r["mean_cost"] / s, 100 * r["accuracy"], markers[r["kind"]], ms=7,
                      color=style.COLORS[(i % 6) + 1], label=r["method"])
        fx = [r["mean_cost"] / s for r in self.frontier]
        fy = np.maximum.accumulate([100 * r["accuracy"] for r in self.frontier])
        ax_a.plot(fx, fy, "-", color="0.45", lw=1.5, label="FrugalGPT-style (labels)")
        (self.c3_dot,) = ax_a.plot([0], [0], "o", ms=13, color=style.COLORS[0], mec="k", label="C3PO (mean of splits)")
        self.b_line = ax_a.axvline(0, color=style.COLORS[3], ls="--", lw=1)
        ax_a.set_xscale("log")
        style.label_axes(ax_a, f"mean cost per query ({self.unit}, log)", "test accuracy (%)", "accuracy vs cost")
        ax_a.legend(fontsize=7, loc="lower right", ncol=1)
        ax_a.set_ylim(0, 104)
        lo = min(min(r["mean_cost"] for r in self.baselines), min(r["mean_cost"] for r in self.frontier)) / s
        ax_a.set_xlim(lo / 1.5, float(self.tr.cost.sum(0).max()) / s * 1.5)
        hi = float(self.tr.cost.sum(0).max()) / s * 1.05
        self.edges = np.geomspace(float(self.tr.cost.min()) / s / 1.05, hi, 41)   # log bins: 40
        tallest = max(np.histogram(c / s, self.edges)[0].max() for c in self.ev.cost) / self.tr.n_queries
        self.hist = ax_h.stairs(np.zeros(40), self.edges, fill=True, color=style.COLORS[0], alpha=0.6,
                                label="test queries (split 1)")
        self.h_line = ax_h.axvline(0, color=style.COLORS[3], ls="--", lw=2, label="budget B")
        ax_h.set_xscale("log")
        ax_h.set_xlim(self.edges[0], hi)
        ax_h.set_ylim(0, min(1.0, tallest * 1.3 + 0.02))
        style.label_axes(ax_h, f"cost per query ({self.unit}, log)", "share of test queries", "cost distribution")
        ax_h.legend(fontsize=8, loc="upper left")
        al = np.array(ALPHAS)
        ax_v.plot([0, 0.52], [0, 0.52], "-", color="0.3", lw=1.5, label="bound: alpha")
        (self.s_line,) = ax_v.plot(al, al, ":", color="0.3", lw=1.5, label="alpha + Monte-Carlo slack")
        (self.v_line,) = ax_v.plot(al, al * 0, "o-", color=style.COLORS[0], label="C3PO: P(cost > B)")
        (self.v_dot,) = ax_v.plot([0], [0], "o", ms=12, mfc="none", mec="k", mew=2)
        ax_v.set_xlim(0, 0.52)
        ax_v.set_ylim(0, 0.6)
        style.label_axes(ax_v, "alpha", "test share with cost > B", "violation rate vs alpha")
        ax_v.legend(fontsize=8, loc="upper left")
        return [self.c3_dot, self.b_line, self.hist, self.h_line, self.s_line, self.v_line, self.v_dot]

    def draw(self, st: dict) -> str:
        """Move the C3PO marker, the budget lines, the histogram and the violation curve; return the readout."""
        s = self.scale
        b = st["budget"] / s
        self.b_line.set_xdata([b, b])
        self.h_line.set_xdata([b, b])
        if np.isfinite(st["accuracy"]):
            self.c3_dot.set_data([st["mean_cost"] / s], [100 * st["accuracy"]])
        else:
            self.c3_dot.set_data([], [])
        c0 = st["costs0"]
        h = np.histogram(c0 / s, self.edges)[0] / max(len(c0), 1) if len(c0) else np.zeros(40)
        self.hist.set_data(h, self.edges)
        al = np.array(ALPHAS)
        viol = np.array([v for v, _ in st["curve"]])
        slack = np.array([sl for _, sl in st["curve"]])
        self.v_line.set_ydata(viol)
        self.s_line.set_ydata(al + slack)
        self.v_dot.set_data([st["alpha"]], [st["violation"]])
        if st["tau0"] is None:
            taus = "infeasible on split 1"
        else:
            taus = ", ".join(f"{m} {'skip' if t > 1 else f'{t:.2f}'}" for m, t in
                             zip(self.tr.models[:-1], st["tau0"][:-1], strict=True))
        ok = st["violation"] <= st["alpha"] + st["slack"]
        acc = "n/a" if not np.isfinite(st["accuracy"]) else f"{100 * st['accuracy']:.1f} %"
        cost = ("n/a" if not np.isfinite(st["mean_cost"]) else
                f"{st['mean_cost'] / s:,.0f} {self.unit} ({100 * st['mean_cost'] / self.large_cost:.0f} % of "
                f"{self.tr.models[-1]} SC@{self.tr.k})")
        return (f"B {b:,.0f} {self.unit} · alpha {st['alpha']:.2f} · |D_cal| {st['n_cal']} → accuracy {acc}, "
                f"mean cost {cost}; P(cost &gt; B) = {st['violation']:.3f} "
                f"{'≤' if ok else '&gt;'} alpha + slack {st['alpha'] + st['slack']:.3f}; infeasible on "
                f"{100 * st['infeasible']:.0f} % of splits · answered by "
                + ", ".join(f"{m} {100 * e:.0f} %" for m, e in zip(self.tr.models, st["exit_share"], strict=True))
                + f" · split 1: tau = ({taus})")


class PriceRatioPanel(SliderPanel):
    """A price-ratio slider over precomputed `lens.versus_greedy` rows: where C3PO stops (or starts) paying.

    `rows_by_ratio` maps a price ratio (dearest / cheapest model) to C3PO's points at that ratio; the
    left axes show them against one greedy answer of the MPM (at cost 1x, accuracy difference 0) with
    the region that beats it shaded; the right axes show, for every ratio, the cheapest point within
    `lens.TOL` of greedy's accuracy, and mark this ladder's own ratio.
    """

    prefix = "nb06-lens"   # its own CSS hooks: the budget panel below owns "nb06-readout"
    figsize = (12, 4.0)

    def __init__(self, rows_by_ratio: dict, ladder_ratio: float, mpm: str = "large", start: float | None = None):
        import ipywidgets as W

        from . import lens

        if not rows_by_ratio:
            raise ValueError("rows_by_ratio is empty: compute lens.versus_greedy at one price ratio at least")
        self.rows = {float(r): v for r, v in sorted(rows_by_ratio.items())}
        self.ratios = list(self.rows)
        self.own, self.mpm, self.lens = float(ladder_ratio), mpm, lens
        self.best = {r: lens.best_point(v) for r, v in self.rows.items()}
        first = start if start is not None else min(self.ratios, key=lambda r: abs(np.log(r / self.own)))
        opts = [(f"{r:,.0f}x" if r >= 10 else f"{r:g}x", r) for r in self.ratios]
        super().__init__({"ratio": W.SelectionSlider(options=opts, value=min(self.ratios, key=lambda r: abs(r - first)),
                                                     description="price ratio")})

    def compute(self, ratio) -> dict:
        """C3PO's points and its best point at this price ratio (from the precomputed rows)."""
        if ratio not in self.rows:
            raise ValueError(f"ratio {ratio!r} was not precomputed; ratios: {self.ratios}")
        rows = self.rows[ratio]
        return {"ratio": ratio, "x": np.array([r["cost_ratio"] for r in rows]),
                "y": 100 * np.array([r["accuracy_diff"] for r in rows]), "best": self.best[ratio]}

    def build(self, fig):
        """Left: C3PO vs greedy MPM at one ratio; right: the best point's cost ratio across ratios."""
        self.ax, self.ax2 = fig.subplots(1, 2)
        ax = self.ax
        ax.fill_between([1e-3, self.lens.MAX_COST_RATIO], -100 * self.lens.TOL, 100, color=style.COLORS[2], alpha=0.12,
                        label="beats greedy (within 1 pt, <= 0.7x cost)")
        ax.plot([1], [0], "k*", ms=14, label=f"{self.mpm}, one greedy answer")
        (self.pts,) = ax.plot([], [], "o-", color=style.COLORS[0], label="C3PO (one point per budget)")
        (self.star,) = ax.plot([], [], "o", ms=13, mfc="none", mec=style.COLORS[3], mew=2, label="best point")
        allx = np.concatenate([[r["cost_ratio"] for r in v] for v in self.rows.values()] + [[1.0]])
        ally = 100 * np.concatenate([[r["accuracy_diff"] for r in v] for v in self.rows.values()] + [[0.0]])
        ax.set(xscale="log", xlim=(max(allx.min() / 1.5, 1e-3), allx.max() * 1.5),
               ylim=(min(ally.min() - 2, -5), max(ally.max() + 2, 3)),
               xlabel=f"mean cost / greedy {self.mpm}'s (log)", ylabel=f"accuracy - greedy {self.mpm}'s (points)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
        b = [self.best[r] for r in self.ratios]
        ok = [p is not None and p["accuracy_diff"] >= -self.lens.TOL for p in b]
        self.ax2.plot(self.ratios, [p["cost_ratio"] if p is not None and o else np.nan for p, o in zip(b, ok)], "o-",
                      color=style.COLORS[0], label="C3PO's cheapest point within 1 pt")
        self.ax2.axhline(self.lens.MAX_COST_RATIO, color=style.COLORS[2], ls="--", label="0.7x greedy's cost")
        self.ax2.axvline(self.own, color="0.4", ls=":", label=f"this ladder's ratio ({self.own:.0f}x)")
        self.vline = self.ax2.axvline(self.ratios[0], color=style.COLORS[3], lw=2)
        self.ax2.set(xscale="log", yscale="log", xlabel=f"price ratio ({self.mpm} / cheapest, per token)",
                     ylabel=f"cost / greedy {self.mpm}'s")
        self.ax2.grid(alpha=0.3)
        self.ax2.legend(fontsize=7, loc="upper right")

    def draw(self, state: dict) -> str:
        """Move the points, the best point and the ratio marker; the readout states the verdict."""
        self.pts.set_data(state["x"], state["y"])
        b = state["best"]
        self.star.set_data([b["cost_ratio"]], [100 * b["accuracy_diff"]]) if b else self.star.set_data([], [])
        self.vline.set_xdata([state["ratio"], state["ratio"]])
        self.ax.set_title(f"price ratio {state['ratio']:,.0f}x", fontsize=10)
        if b is None:
            return "no feasible C3PO point at this ratio"
        verdict = "beats" if b["beats_greedy"] else "does not beat"
        return (f"At {state['ratio']:,.0f}x, C3PO's best point {verdict} one greedy answer of {self.mpm}: "
                f"{100 * b['accuracy_diff']:+.1f} points at {b['cost_ratio']:.2f}x its cost.")
