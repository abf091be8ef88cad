"""Notebook 05's figures and its slider panel: the lambda slider switches between the committed routers.

The routers' held-out evaluations are computed once (`bench.compare`); a move of the lambda slider looks
one up and moves the figure: the quality-cost plane (every baseline, the routers' sweep, the chosen
router highlighted), the chosen router's quality and cost beside the best specialist and large-only, and
its heat map of which model it picks per hop and step kind. The widget machinery (readout, image,
observers, CSS hooks `nb05-*`) is `nblib.panel.SliderPanel`'s.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .. import style
from ..panel import SliderPanel
from .bench import pick_matrix


def episode_table(env, policy, problem: int = 0):
    """One episode hop by hop: the context's last line, the chosen model, the line it wrote, its cost."""
    import pandas as pd

    obs, _ = env.reset(options={"problem": problem})
    rows, done = [], False
    while not done:
        before = env.context.rstrip("\n").split("\n")[-1]
        hop, kind = env.hop, env.problem.kinds[env.hop]
        obs, r, done, _, info = env.step(policy(obs))
        rows.append({"hop": hop + 1, "last line of context": before, "next kind": kind, "model": info["model"],
                     "writes": info["line"], "right": info["line"] == env.problem.step_lines[hop],
                     "call MFLOPs": info["flops"] / 1e6, "spent MFLOPs": env.spent / 1e6})
    df = pd.DataFrame(rows)
    df.attrs.update(quality=info["quality"], episode_return=info["episode_return"], answer=env.problem.answer)
    return df


def plot_curve(ax, curve: Sequence[Sequence[float]], window: int = 200, label: str = "") -> None:
    """Learning curve: running mean of episode return and quality against PPO timesteps."""
    arr = np.asarray(curve, dtype=float)
    if len(arr) == 0:
        return
    w = max(1, min(window, len(arr) // 5 or 1))
    kern = np.ones(w) / w
    steps = arr[w - 1:, 0]
    ax.plot(steps, np.convolve(arr[:, 1], kern, "valid"), label=f"return{label}")
    ax.plot(steps, np.convolve(arr[:, 2], kern, "valid"), "--", label=f"accuracy{label}")
    style.label_axes(ax, "PPO timesteps", "per episode (running mean)", f"learning curve ({w}-episode mean)")
    style.legend_if_many(ax)


def plot_heat(ax, mat: np.ndarray, models: Sequence[str], columns: Sequence[str], title: str = ""):
    """Heat map: rows models, columns (hop, kind); the share of episodes in which each model wrote the step."""
    im = ax.imshow(np.nan_to_num(mat, nan=0.0), vmin=0, vmax=1, cmap="Blues", aspect="auto")
    ax.set_yticks(range(len(models)), models)
    ax.set_xticks(range(len(columns)), columns, rotation=60, ha="right", fontsize="small")
    ax.grid(False)
    ax.set_title(title or "which model writes the step")
    return im


class RouterPanel(SliderPanel):
    """Lambda slider over the committed routers: quality-cost plane, quality and cost bars, heat map."""

    prefix = "nb05"
    figsize = (13, 4.2)
    blit = True                     # a move redraws the highlight, the bars and the heat map only

    def __init__(self, rows: Sequence[dict], evals: Mapping[float, object], models: Sequence[str], horizon: int = 3,
                 lam: float | None = None):
        import ipywidgets as W

        self.rows, self.models, self.horizon = list(rows), list(models), horizon
        self.lams = sorted(float(x) for x in evals)
        self.points = {}
        for r in self.rows:
            if r["method"] == "HierRouter (PPO)":
                self.points[float(r["lam"])] = r
        self.heat = {lam: pick_matrix(evals[lam], self.models, horizon) for lam in self.lams}
        singles = [r for r in self.rows if r["method"].endswith(" only")]
        specs = [r for r in singles if r["method"].startswith("spec-")] or singles
        self.spec = max(specs, key=lambda r: r["accuracy"])
        self.large = max(singles, key=lambda r: r["cost"])
        super().__init__({"lam": W.SelectionSlider(options=self.lams, value=lam if lam is not None else self.lams[0],
                                                   description="λ (cost weight)")})

    def compute(self, lam: float) -> dict:
        """The router trained for this lambda: its accuracy, cost and heat map (look-ups)."""
        lam = float(lam)
        r = self.points[lam]
        mat, cols = self.heat[lam]
        return {"lam": lam, "accuracy": r["accuracy"], "cost": r["cost"], "heat": mat, "columns": cols}

    def build(self, fig) -> list:
        """The plane of every method, the bars, and the heat map; returns the artists a move changes."""
        gs = fig.add_gridspec(1, 3, width_ratios=[1.15, 0.8, 1.6])
        self.ax_plane, self.ax_bar, self.ax_heat = (fig.add_subplot(gs[0, i]) for i in range(3))
        ax = self.ax_plane
        for r in self.rows:
            m = r["method"]
            if m.endswith(" only"):
                ax.plot(r["cost"], r["accuracy"], "s", ms=7, label=None)
                ax.annotate(m.replace(" only", ""), (r["cost"], r["accuracy"]), fontsize="small",
                            xytext=(4, -10), textcoords="offset points")
        rnd = sorted((r["cost"], r["accuracy"]) for r in self.rows if r["method"].startswith("random"))
        ax.plot(*zip(*rnd, strict=True), "x:", color="grey", label="random routing")
        orc = sorted((r["cost"], r["accuracy"]) for r in self.rows if r["method"] == "oracle")
        ax.plot(*zip(*orc, strict=True), "^--", color=style.COLORS[3], ms=5, label="oracle (per problem)")
        pol = [self.points[lam] for lam in self.lams]
        ax.plot([r["cost"] for r in pol], [r["accuracy"] for r in pol], "o-", color=style.COLORS[0], label="HierRouter")
        (self.dot,) = ax.plot([0], [0], "o", ms=14, mfc="none", mec="k", mew=2)
        ax.set_xscale("log")
        style.label_axes(ax, "cost (× large-only FLOPs)", "accuracy", "quality vs cost (held out)", loc="lower right",
                         fontsize="small")
        self.bars = self.ax_bar.bar(["router\naccuracy", "router\ncost", "spec\naccuracy", "spec\ncost"],
                                    [0, 0, self.spec["accuracy"], self.spec["cost"]],
                                    color=[style.COLORS[0], style.COLORS[1], "lightgrey", "silver"])
        self.ax_bar.axhline(self.large["accuracy"], color="k", lw=1, ls=":")
        self.ax_bar.set_ylim(0, 1.1)
        style.label_axes(self.ax_bar, "", "accuracy / cost (× large)", "this λ vs best specialist")
        self.ax_bar.grid(axis="x", visible=False)
        mat, cols = self.heat[self.lams[0]]
        self.im = plot_heat(self.ax_heat, mat, self.models, cols)
        return [self.im, self.dot, self.bars[0], self.bars[1]]

    def draw(self, st: dict) -> str:
        """Move the highlight, the bars and the heat map; return the readout."""
        self.dot.set_data([st["cost"]], [st["accuracy"]])
        self.bars[0].set_height(st["accuracy"])
        self.bars[1].set_height(st["cost"])
        self.im.set_data(np.nan_to_num(st["heat"], nan=0.0))
        return (f"λ {st['lam']:g} · accuracy {st['accuracy']:.3f} · cost {st['cost']:.3f} × large-only "
                f"(best specialist {self.spec['method'].replace(' only', '')}: {self.spec['accuracy']:.3f} at "
                f"{self.spec['cost']:.3f})")
