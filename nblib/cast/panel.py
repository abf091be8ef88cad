"""Figures and the slider panel of notebook 07 (CAST): the draft tree, latency curves, the tree-shape sweep.

`TreeSweepPanel` is a `nblib.panel.SliderPanel` (CSS hooks `nb07-*`): a move is a
table look-up into the precomputed sweep plus a full redraw of one Agg figure.
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .. import style
from ..panel import SliderPanel


def tree_layout(parent: list[int], depth: list[int]) -> dict[int, tuple[float, float]]:
    """(x = depth, y = leaf-order) coordinates for a tree given parent indices (root 0) and depths."""
    children: dict[int, list[int]] = {i: [] for i in range(len(parent))}
    for i in range(1, len(parent)):
        children[parent[i]].append(i)
    pos: dict[int, tuple[float, float]] = {}
    nxt = [0.0]

    def place(i: int) -> float:
        if not children[i]:
            y = nxt[0]
            nxt[0] += 1
        else:
            y = float(np.mean([place(c) for c in children[i]]))
        pos[i] = (float(depth[i]), y)
        return y

    place(0)
    return pos


def draw_tree(tree, row: int, tok, ax=None, max_label: int = 10):
    """Draw one verified draft tree (a cast.Tree) for one batch row; the accepted path in green, bonus token after it."""
    with style.context():
        if ax is None:
            ax = Figure(figsize=(9, 5), dpi=80).subplots()
        accept, bonus = style.COLORS[2], style.COLORS[3]
        par, dep = tree.parent[row].tolist(), tree.depth[row].tolist()
        toks, acc = tree.tokens[row].tolist(), tree.accepted[row].tolist()
        pos = tree_layout(par, dep)
        for i in range(1, len(par)):
            (x0, y0), (x1, y1) = pos[par[i]], pos[i]
            on = acc[i]
            ax.plot([x0, x1], [y0, y1], "-", color=accept if on else "0.75", lw=2.5 if on else 0.8, zorder=1)
        for i, (x, y) in pos.items():
            text = tok.decode([toks[i]]).replace("\n", "\\n")[:max_label] if i else "root"
            ax.text(x, y, text, ha="center", va="center", fontsize="x-small", zorder=3,
                    bbox=dict(boxstyle="round,pad=0.2", fc=accept if acc[i] else "white", ec="0.4",
                              alpha=0.9 if acc[i] else 0.8))
        last = max((i for i in range(len(acc)) if acc[i]), key=lambda i: dep[i])
        bx, by = pos[last][0] + 1, pos[last][1]
        ax.annotate("", (bx - 0.15, by), (pos[last][0] + 0.15, by), arrowprops=dict(arrowstyle="->", color=bonus))
        ax.text(bx, by, tok.decode([int(tree.bonus[row])]).replace("\n", "\\n")[:max_label] + "\n(bonus)",
                ha="left", va="center", fontsize="x-small", color=bonus)
        ax.set_xlabel("depth in the tree (tokens ahead of the committed text)")
        style.integer_axis(ax, "x")
        ax.set_yticks([])
        ax.grid(False)
        ax.set_xlim(-0.5, max(dep) + 1.8)
        ax.set_title(f"one decoding step: {len(par) - 1} drafted tokens verified in one target call,\n"
                     f"{sum(acc) - 1} accepted + 1 bonus")
        ax.spines["left"].set_visible(False)
    return ax


def latency_figure(profiles: dict, context: int | None = None) -> Figure:
    """Measured target verification latency vs tree tokens, one curve per batch size; and draft latency per level."""
    with style.context():
        fig = Figure(figsize=(11, 3.8), dpi=80)
        ax1, ax2 = fig.subplots(1, 2)
        cache = None
        for b, p in sorted(profiles.items()):
            r = p.row(context if context is not None else p.contexts[-1])
            ax1.plot(p.target_n, p.target_s[r] * 1e3, "o-", label=f"batch {b}")
            ax2.plot(p.draft_n, p.draft_s[r] * 1e3, "s-", label=f"batch {b}")
            cache = p.contexts[r]
        style.label_axes(ax1, "tree tokens verified (n)", "ms per call",
                         f"target: one verification call\n(cache {cache} tokens)", integer_x=True)
        style.label_axes(ax2, "tokens drafted in one tree level", "ms per draft call", "draft: one tree level",
                         integer_x=True)
        fig.tight_layout()
    return fig


class TreeSweepPanel(SliderPanel):
    """Sliders for depth, top-k, token budget and batch size over a precomputed sweep of fixed trees."""

    prefix = "nb07"
    figsize = (11, 3.8)

    def __init__(self, rows: list[dict]):
        import ipywidgets as W

        self.rows = rows
        self.table = {(r["batch"], r["depth"], r["top_k"], r["budget"]): r for r in rows}
        trees = [r for r in rows if r["depth"] > 0]
        opts = {k: sorted({r[k] for r in trees}) for k in ("depth", "top_k", "budget", "batch")}
        super().__init__({k: W.SelectionSlider(options=opts[k], value=opts[k][0], description=label)
                          for k, label in (("depth", "depth"), ("top_k", "top-k"), ("budget", "budget"),
                                           ("batch", "batch"))})

    def controls(self):
        """Tree shape (depth, top-k) on one row, budget and batch size on the next."""
        import ipywidgets as W

        s = self.sliders
        return W.VBox([W.HBox([s["depth"], s["top_k"]]), W.HBox([s["budget"], s["batch"]])])

    def build(self, fig) -> None:
        """Tokens/s against accepted length for every shape, and against the budget for this shape."""
        self.ax_s, self.ax_b = fig.subplots(1, 2)
        ax = self.ax_s
        self.cloud = ax.scatter([0], [0], c="0.7", s=18, label="other tree shapes")
        (self.dot,) = ax.plot([0], [0], "o", color=style.COLORS[3], ms=9, label="this shape", zorder=3)
        self.plain_s = ax.axhline(1, color="k", ls="--", lw=1, label="plain greedy")
        style.label_axes(ax, "tokens per target call (accepted + bonus)", "tokens / s (per batch, measured)",
                         "batch 1: every swept tree shape", loc="lower right")
        ax = self.ax_b
        (self.line,) = ax.plot([0], [0], "o-", color=style.COLORS[0], label="this depth and top-k")
        (self.ring,) = ax.plot([0], [0], "o", ms=12, mfc="none", mec=style.COLORS[3], mew=2)
        self.plain_b = ax.axhline(1, color="k", ls="--", lw=1, label="plain greedy")
        style.label_axes(ax, "token budget (nodes verified)", "tokens / s",
                         "more verified: more accepted,\nbut each call costs more", integer_x=True, loc="lower right")
        self.legend_b = ax.get_legend()
        budgets = sorted({r["budget"] for r in self.rows if r["depth"] > 0})
        ax.set_xlim(0, max(budgets) * 1.08)
        ymax = max(r["tokens_per_s"] for r in self.rows) * 1.15
        amax = max(r["accepted"] for r in self.rows) * 1.1
        self.ax_s.set_xlim(0.9, amax)
        for a in (self.ax_s, self.ax_b):
            a.set_ylim(0, ymax)

    def compute(self, depth, top_k, budget, batch) -> dict:
        """The measured result at these slider values (a table look-up)."""
        return self.table[(batch, depth, top_k, budget)]

    def draw(self, st: dict) -> str:
        """Move the dot, the cloud, the budget curve and the plain-greedy lines; return the readout."""
        b = st["batch"]
        same_b = [r for r in self.rows if r["batch"] == b and r["depth"] > 0]
        plain = self.table[(b, 0, 0, 0)]
        self.cloud.set_offsets(np.array([[r["accepted"], r["tokens_per_s"]] for r in same_b]))
        self.dot.set_data([st["accepted"]], [st["tokens_per_s"]])
        self.ax_s.set_title(f"batch {b}: every swept tree shape")
        same = sorted((r for r in same_b if r["depth"] == st["depth"] and r["top_k"] == st["top_k"]),
                      key=lambda r: r["budget"])
        self.line.set_data([r["budget"] for r in same], [r["tokens_per_s"] for r in same])
        self.legend_b.get_texts()[0].set_text(f"depth {st['depth']}, top-k {st['top_k']}")
        self.ring.set_data([st["budget"]], [st["tokens_per_s"]])
        for h in (self.plain_s, self.plain_b):
            h.set_ydata([plain["tokens_per_s"]] * 2)
        return (f"depth {st['depth']} · top-k {st['top_k']} · budget {st['budget']} · batch {b} → "
                f"{st['tokens_per_s']:.1f} tok/s ({st['tokens_per_s'] / plain['tokens_per_s']:.2f}x plain), "
                f"{st['accepted']:.2f} tokens per target call")
