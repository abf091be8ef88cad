"""Notebook 05's figures and its slider panel: the lambda slider switches between the committed routers.

The routers' held-out evaluations are computed once (`bench.compare`); a move of the lambda slider looks
one up and moves the figure: the quality-cost plane (every baseline, the mixing line of tiny-only and
large-only, the routers' seeds and their mean, the chosen lambda highlighted) and the chosen router's heat
map of which model it picks per hop and step kind. The widget machinery (readout, image, observers, CSS hooks
`nb05-*`) is `nblib.panel.SliderPanel`'s.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .. import style
from ..panel import SliderPanel
from . import baselines as B
from .bench import ROUTER, pick_matrix


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
                     "writes": info["line"], "right": info["right"], "call MFLOPs": info["flops"] / 1e6,
                     "router MFLOPs": info["router_flops"] / 1e6, "spent MFLOPs": env.spent / 1e6})
    df = pd.DataFrame(rows)
    df.attrs.update(quality=info["quality"], episode_return=info["episode_return"], answer=env.problem.answer)
    return df


def plot_curve(ax, curve: Sequence[Sequence[float]], label: str = "", window: int = 10) -> None:
    """Learning curve (binned episodes): running mean of episode accuracy against PPO timesteps."""
    arr = np.asarray(curve, dtype=float)
    if len(arr) == 0:
        return
    w = max(1, min(window, len(arr) // 5 or 1))
    kern = np.ones(w) / w
    ax.plot(arr[w - 1:, 0], np.convolve(arr[:, 2], kern, "valid"), label=f"accuracy{label}")
    style.label_axes(ax, "PPO timesteps", "training accuracy (running mean)", "learning curves")
    style.legend_if_many(ax)


def plot_heat(ax, mat: np.ndarray, models: Sequence[str], columns: Sequence[str], title: str = ""):
    """Heat map: rows models, columns (hop, kind); the share of episodes in which each model wrote the step."""
    im = ax.imshow(np.nan_to_num(mat, nan=0.0), vmin=0, vmax=1, cmap="Blues", aspect="auto")
    ax.set_yticks(range(len(models)), models)
    ax.set_xticks(range(len(columns)), columns, rotation=70, ha="right", fontsize="x-small")
    ax.grid(False)
    ax.set_title(title or "which model writes the step")
    return im


def plot_plane(ax, rows: Sequence[dict], log: bool = False) -> None:
    """The quality-cost plane: models alone, the mixing line, random, baselines' sweeps, oracle, router seeds + mean."""
    singles = [r for r in rows if r["method"].endswith(" only")]
    for r in singles:
        ax.plot(r["cost"], r["accuracy"], "s", color="k", ms=6)
        ax.annotate(r["method"].replace(" only", ""), (r["cost"], r["accuracy"]), fontsize="x-small",
                    xytext=(4, -10), textcoords="offset points")
    tiny, large = singles[0], singles[-1]
    ax.plot([tiny["cost"], large["cost"]], [tiny["accuracy"], large["accuracy"]], "-", color="grey", lw=1.5,
            label="mixing line (tiny-only / large-only)")

    def sweep(name, fmt, **kw):
        pts = sorted((r["cost"], r["accuracy"]) for r in rows if r["method"].startswith(name))
        if pts:
            ax.plot(*zip(*pts, strict=True), fmt, **kw)

    sweep("random at matched cost", "x", color="grey", label="random at matched cost")
    sweep("greedy by step kind", "v:", color=style.COLORS[2], label="greedy by step kind")
    sweep("best fixed sequence", "d:", color=style.COLORS[4], label="best fixed sequence")
    sweep("logistic router", "P--", color=style.COLORS[1], label="logistic router (non-RL)")
    sweep("oracle", "^--", color=style.COLORS[3], ms=4, label="oracle")
    seeds = [r for r in rows if r["method"] == ROUTER]
    ax.plot([r["cost"] for r in seeds], [r["accuracy"] for r in seeds], ".", color=style.COLORS[0], alpha=0.5)
    sweep(f"{ROUTER}, mean of seeds", "o-", color=style.COLORS[0], label="HierRouter (mean of seeds)")
    if log:
        ax.set_xscale("log")
    style.label_axes(ax, "cost (× large-only FLOPs)", "accuracy (held out)", "quality vs cost", loc="lower right",
                     fontsize="x-small")


class RouterPanel(SliderPanel):
    """Lambda slider over the committed routers: the quality-cost plane and the chosen router's heat map."""

    prefix = "nb05"
    figsize = (13, 4.4)
    blit = True                     # a move redraws the highlight and the heat map only

    def __init__(self, rows: Sequence[dict], walks: Mapping[float, object], arrays, lam: float | None = None):
        import ipywidgets as W

        self.rows, self.arrays = list(rows), arrays
        self.lams = sorted(float(x) for x in walks)
        self.points = {float(r["lam"]): r for r in self.rows if r["method"] == f"{ROUTER}, mean of seeds"}
        self.heat = {lam: pick_matrix(arrays, walks[lam]) for lam in self.lams}
        singles = [r for r in self.rows if r["method"].endswith(" only")]
        self.tiny, self.large = singles[0], singles[-1]
        super().__init__({"lam": W.SelectionSlider(options=self.lams, value=lam if lam is not None else self.lams[0],
                                                   description="λ (cost weight)")})

    def compute(self, lam: float) -> dict:
        """The routers trained for this lambda: mean accuracy and cost over seeds, spread, heat map (look-ups)."""
        lam = float(lam)
        r = self.points[lam]
        mat, cols = self.heat[lam]
        mix = float(B.mixing_line(self.tiny, self.large, r["cost"]))
        return {"lam": lam, "accuracy": r["accuracy"], "cost": r["cost"], "spread": r["spread"], "mixing": mix,
                "heat": mat, "columns": cols}

    def build(self, fig) -> list:
        """The plane of every method and the heat map; returns the artists a move changes."""
        gs = fig.add_gridspec(1, 2, width_ratios=[1.0, 1.7])
        self.ax_plane, self.ax_heat = fig.add_subplot(gs[0, 0]), fig.add_subplot(gs[0, 1])
        plot_plane(self.ax_plane, self.rows)
        (self.dot,) = self.ax_plane.plot([0], [0], "o", ms=14, mfc="none", mec="k", mew=2)
        mat, cols = self.heat[self.lams[0]]
        self.im = plot_heat(self.ax_heat, mat, self.arrays.names, cols, "which model writes the step (seed 0)")
        return [self.im, self.dot]

    def draw(self, st: dict) -> str:
        """Move the highlight and the heat map; return the readout."""
        self.dot.set_data([st["cost"]], [st["accuracy"]])
        self.im.set_data(np.nan_to_num(st["heat"], nan=0.0))
        return (f"λ {st['lam']:g} · accuracy {st['accuracy']:.3f} (seed spread {st['spread']:.3f}) · cost "
                f"{st['cost']:.3f} × large-only · mixing line at that cost {st['mixing']:.3f}")
