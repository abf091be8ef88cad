"""Figures and the slider panel of notebook 07 (CAST): the draft tree, latency curves, the tree-shape sweep."""
from __future__ import annotations

import time

import numpy as np
from matplotlib.figure import Figure

from ..panel import figure_png


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
    if ax is None:
        ax = Figure(figsize=(9, 5), dpi=80).subplots()
    par, dep = tree.parent[row].tolist(), tree.depth[row].tolist()
    toks, acc = tree.tokens[row].tolist(), tree.accepted[row].tolist()
    pos = tree_layout(par, dep)
    for i in range(1, len(par)):
        (x0, y0), (x1, y1) = pos[par[i]], pos[i]
        on = acc[i]
        ax.plot([x0, x1], [y0, y1], "-", color="tab:green" if on else "0.75", lw=2.5 if on else 0.8, zorder=1)
    for i, (x, y) in pos.items():
        text = tok.decode([toks[i]]).replace("\n", "\\n")[:max_label] if i else "root"
        colour = "tab:green" if acc[i] else "white"
        ax.text(x, y, text, ha="center", va="center", fontsize=7, zorder=3,
                bbox=dict(boxstyle="round,pad=0.2", fc=colour, ec="0.4", alpha=0.9 if acc[i] else 0.8))
    last = max((i for i in range(len(acc)) if acc[i]), key=lambda i: dep[i])
    bx, by = pos[last][0] + 1, pos[last][1]
    ax.annotate("", (bx - 0.15, by), (pos[last][0] + 0.15, by), arrowprops=dict(arrowstyle="->", color="tab:red"))
    ax.text(bx, by, tok.decode([int(tree.bonus[row])]).replace("\n", "\\n")[:max_label] + "\n(bonus)", ha="left",
            va="center", fontsize=7, color="tab:red")
    ax.set_xlabel("depth in the tree (tokens ahead of the committed text)")
    ax.set_yticks([])
    ax.set_xlim(-0.5, max(dep) + 1.8)
    ax.set_title(f"one decoding step: {len(par) - 1} drafted tokens verified in one target call, "
                 f"{sum(acc) - 1} accepted + 1 bonus", fontsize=9)
    for s in ("top", "right", "left"):
        ax.spines[s].set_visible(False)
    return ax


def latency_figure(profiles: dict, context: int | None = None) -> Figure:
    """Measured target verification latency vs tree tokens, one curve per batch size; and draft latency per level."""
    fig = Figure(figsize=(10, 3.4), dpi=80)
    ax1, ax2 = fig.subplots(1, 2)
    for b, p in sorted(profiles.items()):
        r = p.row(context if context is not None else p.contexts[-1])
        ax1.plot(p.target_n, p.target_s[r] * 1e3, "o-", label=f"batch {b}")
        ax2.plot(p.draft_n, p.draft_s[r] * 1e3, "s-", label=f"batch {b}")
        ax1.set_title(f"target: one verification call (cache {p.contexts[r]} tokens)", fontsize=9)
    ax1.set_xlabel("tree tokens verified (n)")
    ax1.set_ylabel("ms per call")
    ax2.set_xlabel("tokens drafted in one tree level")
    ax2.set_ylabel("ms per draft call")
    ax2.set_title("draft: one tree level", fontsize=9)
    for a in (ax1, ax2):
        a.legend(fontsize=7)
        a.grid(alpha=0.3)
    fig.tight_layout()
    return fig


class TreeSweepPanel:
    """Sliders for depth, top-k, token budget and batch size over a precomputed sweep of fixed trees."""

    def __init__(self, rows: list[dict]):
        import ipywidgets as W

        self.rows = rows
        self.table = {(r["batch"], r["depth"], r["top_k"], r["budget"]): r for r in rows}
        trees = [r for r in rows if r["depth"] > 0]
        opts = {k: sorted({r[k] for r in trees}) for k in ("depth", "top_k", "budget", "batch")}
        self.sliders = {}
        for k, label in (("depth", "depth"), ("top_k", "top-k"), ("budget", "budget"), ("batch", "batch")):
            s = W.SelectionSlider(options=opts[k], value=opts[k][0], description=label, continuous_update=False)
            s.add_class(f"cast-{k.replace('_', '')}")
            s.observe(lambda ch: self.update(), names="value")
            self.sliders[k] = s
        self.label = W.Label()
        self.label.add_class("cast-label")
        self.image = W.Image(format="png")
        self.image.add_class("cast-plot")
        self.last_update_ms = float("nan")
        self.fig = Figure(figsize=(10, 3.4), dpi=72)
        self.ax_s, self.ax_b = self.fig.subplots(1, 2)
        self._build()
        self.update()
        self.widget = W.VBox([W.HBox([self.sliders["depth"], self.sliders["top_k"]]),
                              W.HBox([self.sliders["budget"], self.sliders["batch"]]), self.label, self.image])

    def _build(self) -> None:
        """Create the artists once; updates only move data (fast redraws)."""
        ax = self.ax_s
        self.cloud = ax.scatter([0], [0], c="0.7", s=18, label="other tree shapes")
        (self.dot,) = ax.plot([0], [0], "o", color="tab:red", ms=9, label="this shape", zorder=3)
        self.plain_s = ax.axhline(1, color="k", ls="--", lw=1, label="plain greedy")
        ax.set_xlabel("tokens per target call (accepted + bonus)")
        ax.set_ylabel("tokens / s (per batch, measured)")
        ax.legend(fontsize=7, loc="lower right")
        ax = self.ax_b
        (self.line,) = ax.plot([0], [0], "o-", color="tab:blue")
        (self.ring,) = ax.plot([0], [0], "o", ms=12, mfc="none", mec="tab:red", mew=2)
        self.plain_b = ax.axhline(1, color="k", ls="--", lw=1, label="plain greedy")
        ax.set_xlabel("token budget (nodes verified)")
        ax.set_ylabel("tokens / s")
        ax.set_title("more tokens verified: more accepted, but each call costs more", fontsize=9)
        self.fig.tight_layout()
        budgets = sorted({r["budget"] for r in self.rows if r["depth"] > 0})
        ax.set_xlim(0, max(budgets) * 1.08)
        ymax = max(r["tokens_per_s"] for r in self.rows) * 1.15
        amax = max(r["accepted"] for r in self.rows) * 1.1
        self.ax_s.set_xlim(0.9, amax)
        for a in (self.ax_s, self.ax_b):
            a.set_ylim(0, ymax)

    def state(self) -> dict:
        """The measured result at the sliders' values (a table look-up)."""
        v = {k: s.value for k, s in self.sliders.items()}
        return self.table[(v["batch"], v["depth"], v["top_k"], v["budget"])]

    def update(self) -> None:
        """Redraw both panels for the current slider values."""
        t0 = time.perf_counter()
        st = self.state()
        b = st["batch"]
        same_b = [r for r in self.rows if r["batch"] == b and r["depth"] > 0]
        plain = self.table[(b, 0, 0, 0)]
        self.cloud.set_offsets(np.array([[r["accepted"], r["tokens_per_s"]] for r in same_b]))
        self.dot.set_data([st["accepted"]], [st["tokens_per_s"]])
        self.ax_s.set_title(f"batch {b}: every swept tree shape", fontsize=9)
        same = sorted((r for r in same_b if r["depth"] == st["depth"] and r["top_k"] == st["top_k"]),
                      key=lambda r: r["budget"])
        self.line.set_data([r["budget"] for r in same], [r["tokens_per_s"] for r in same])
        self.line.set_label(f"depth {st['depth']}, top-k {st['top_k']}")
        self.ring.set_data([st["budget"]], [st["tokens_per_s"]])
        for h in (self.plain_s, self.plain_b):
            h.set_ydata([plain["tokens_per_s"]] * 2)
        self.image.value = figure_png(self.fig)
        self.label.value = (f"depth {st['depth']} · top-k {st['top_k']} · budget {st['budget']} · batch {b} → "
                            f"{st['tokens_per_s']:.1f} tok/s ({st['tokens_per_s'] / plain['tokens_per_s']:.2f}x plain), "
                            f"{st['accepted']:.2f} tokens per target call")
        self.last_update_ms = (time.perf_counter() - t0) * 1e3

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
