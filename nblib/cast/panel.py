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


def _label(tok, token_id: int, max_label: int) -> str:
    """A token as a readable node label: newlines as \\n, a leading space as a visible dot."""
    text = tok.decode([token_id]).replace("\n", "\\n")
    if text.startswith(" "):
        text = "\u00b7" + text[1:]
    return text[:max_label] or "\u2205"


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
            text = _label(tok, toks[i], max_label) if i else "root"
            ax.text(x, y, text, ha="center", va="center", fontsize="small", zorder=3,
                    bbox=dict(boxstyle="round,pad=0.2", fc=accept if acc[i] else "white", ec="0.4",
                              alpha=0.9 if acc[i] else 0.8))
        last = max((i for i in range(len(acc)) if acc[i]), key=lambda i: dep[i])
        bx, by = pos[last][0] + 1, pos[last][1]
        ax.annotate("", (bx - 0.15, by), (pos[last][0] + 0.15, by), arrowprops=dict(arrowstyle="->", color=bonus))
        ax.text(bx, by, _label(tok, int(tree.bonus[row]), max_label) + "\n(bonus)",
                ha="left", va="center", fontsize="small", color=bonus)
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


def verify_cost_figure(rows: list[dict], context: int | None = None) -> Figure:
    """Cost of verifying n tree tokens relative to one decode step (each path's own n = 1) beside FLOPs."""
    with style.context():
        fig = Figure(figsize=(11, 3.8), dpi=80)
        ax1, ax2 = fig.subplots(1, 2)
        n = [r["n"] for r in rows]
        for ax in (ax1, ax2):
            ax.plot(n, [r["lean_rel"] for r in rows], "o-", color=style.COLORS[0],
                    label="measured: lean path, skinny kernel (used)")
            if "torch_rel" in rows[0]:
                ax.plot(n, [r["torch_rel"] for r in rows], "^-.", color=style.COLORS[2],
                        label="measured: lean path, torch's matmul")
            ax.plot(n, [r["hf_rel"] for r in rows], "s--", color=style.COLORS[1], label="measured: transformers' forward")
            ax.plot(n, [r["flops_rel"] for r in rows], ":", color="0.4", label="FLOPs alone predict")
        ax1.set_yscale("log")
        ctx = f" (cache {context} tokens)" if context else ""
        style.label_axes(ax1, "tree tokens verified in one call (n)", "cost / one decode step",
                         f"one target call on n tokens{ctx}, log scale", loc="upper left")
        ax2.set_ylim(0, max(max(r["hf_rel"], r.get("torch_rel", 0), r["lean_rel"]) for r in rows) * 1.15)
        style.label_axes(ax2, "tree tokens verified in one call (n)", "cost / one decode step",
                         "the same, linear scale: FLOPs (dotted) leave the plot", loc="upper left")
        fig.tight_layout()
    return fig


def agreement_figure(agreement: dict) -> Figure:
    """Top-1 agreement with the target per draft: depth 1 reads the target's feature, deeper its own predictions."""
    with style.context():
        fig = Figure(figsize=(7, 3.4), dpi=80)
        ax = fig.subplots()
        names = {"feature": "feature draft (EAGLE)", "token": "token draft"}
        width = 0.38
        for j, (kind, ag) in enumerate(sorted(agreement.items())):
            depths = sorted(int(k[5:]) for k in ag)
            xs = np.array(depths) + (j - 0.5) * width
            bars = ax.bar(xs, [ag[f"agree{d}"] for d in depths], width, color=style.COLORS[j],
                          label=names.get(kind, kind))
            ax.bar_label(bars, fmt="%.2f", fontsize="small")
        ax.set_ylim(0, 1)
        style.integer_axis(ax, "x")
        style.label_axes(ax, "tree depth (steps ahead of the committed text)",
                         "top-1 agreement with the target", "does the draft's first choice match the target's?",
                         loc="upper right")
        fig.tight_layout()
    return fig


def speedup_figure(rows: list[dict]) -> Figure:
    """Tokens/s over transformers' generate greedy per method and batch size; 1 = no gain (dashed)."""
    with style.context():
        fig = Figure(figsize=(11, 4), dpi=80)
        ax = fig.subplots()
        done = [r for r in rows if r.get("speedup") is not None and r.get("speedup") == r.get("speedup")]
        labels = []
        for r in done:
            lab = r["method"] + ("" if r.get("draft", "–") == "–" else f" · {r['draft'].split()[0]}")
            if lab not in labels:
                labels.append(lab)
        batches = sorted({r["batch"] for r in done})
        width = 0.8 / max(1, len(batches))
        for j, b in enumerate(batches):
            vals = {(r["method"] + ("" if r.get("draft", "–") == "–" else f" · {r['draft'].split()[0]}")): r["speedup"]
                    for r in done if r["batch"] == b}
            xs = [i + (j - (len(batches) - 1) / 2) * width for i, lab in enumerate(labels) if lab in vals]
            ax.bar(xs, [vals[lab] for lab in labels if lab in vals], width, color=style.COLORS[j], label=f"batch {b}")
        ax.axhline(1, color="k", ls="--", lw=1, label="generate greedy (= 1)")
        ax.set_ylim(0, max([1.0] + [r["speedup"] for r in done]) * 1.3)  # room for the legend above the bars
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize="small")
        style.label_axes(ax, "", "tokens/s ÷ generate greedy's", "speedup over transformers' generate, same run",
                         loc="upper center", ncol=len(batches) + 1)
        fig.tight_layout()
    return fig


class TreeSweepPanel(SliderPanel):
    """Sliders for depth, top-k, token budget and batch size over a precomputed sweep of fixed trees."""

    prefix = "nb07"
    figsize = (11, 3.8)
    blit = True  # a move redraws only the moving artists over a cached background (axes, titles, legends fixed)

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

    def build(self, fig) -> list:
        """Tokens/s against accepted length for every shape, and against the budget for this shape; returns the
        artists a move changes (blitted)."""
        self.ax_s, self.ax_b = fig.subplots(1, 2)
        ax = self.ax_s
        self.cloud = ax.scatter([0], [0], c="0.7", s=18, label="other tree shapes")
        (self.dot,) = ax.plot([0], [0], "o", color=style.COLORS[3], ms=9, label="this shape", zorder=3)
        self.plain_s = ax.axhline(1, color="k", ls="--", lw=1, label="plain greedy")
        style.label_axes(ax, "tokens per target call (accepted + bonus)", "tokens / s (per batch, measured)",
                         "every swept tree shape at this batch size", loc="lower right")
        ax = self.ax_b
        (self.line,) = ax.plot([0], [0], "o-", color=style.COLORS[0], label="this depth and top-k, every budget")
        (self.ring,) = ax.plot([0], [0], "o", ms=12, mfc="none", mec=style.COLORS[3], mew=2)
        self.plain_b = ax.axhline(1, color="k", ls="--", lw=1, label="plain greedy")
        style.label_axes(ax, "token budget (nodes verified)", "tokens / s",
                         "more verified: more accepted,\nbut each call costs more", integer_x=True, loc="lower right")
        budgets = sorted({r["budget"] for r in self.rows if r["depth"] > 0})
        ax.set_xlim(0, max(budgets) * 1.08)
        ymax = max(r["tokens_per_s"] for r in self.rows) * 1.15
        amax = max(r["accepted"] for r in self.rows) * 1.1
        self.ax_s.set_xlim(0.9, amax)
        for a in (self.ax_s, self.ax_b):
            a.set_ylim(0, ymax)
        return [self.cloud, self.dot, self.plain_s, self.line, self.ring, self.plain_b]

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
        same = sorted((r for r in same_b if r["depth"] == st["depth"] and r["top_k"] == st["top_k"]),
                      key=lambda r: r["budget"])
        self.line.set_data([r["budget"] for r in same], [r["tokens_per_s"] for r in same])
        self.ring.set_data([st["budget"]], [st["tokens_per_s"]])
        for h in (self.plain_s, self.plain_b):
            h.set_ydata([plain["tokens_per_s"]] * 2)
        return (f"depth {st['depth']} · top-k {st['top_k']} · budget {st['budget']} · batch {b} → "
                f"{st['tokens_per_s']:.1f} tok/s ({st['tokens_per_s'] / plain['tokens_per_s']:.2f}x plain), "
                f"{st['accepted']:.2f} tokens per target call")
