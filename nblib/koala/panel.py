"""KOALA's figures and slider panel: the U-Net drawn as stages, and a recipe panel at SDXL scale.

The panel's expensive part is one `koala.costs.CostTable` (SDXL built once on the meta
device, FLOPs counted per unit); each slider move derives the recipe (config
arithmetic) and sums the table's precomputed units, then redraws one Agg figure
into an `ipywidgets.Image`. `panel.last_update_ms` records the cost of a move.
"""
from __future__ import annotations

import time

import numpy as np
from matplotlib.figure import Figure

from ..panel import canvas_png
from . import costs as C
from . import recipes as K


def _positions(n: int) -> dict:
    """x, y of every stage box in a U: encoder down the left, mid at the bottom, decoder up the right."""
    pos = {f"DW-{i + 1}": (i, n - i) for i in range(n)}
    pos["Mid"] = (n, 0.2)
    pos.update({f"UP-{i + 1}": (n + 1 + i, 1 + i) for i in range(n)})
    return pos


class UDiagram:
    """The U-Net's stages as boxes on a U (box area = parameters), with artists updated in place."""

    def __init__(self, ax, table: C.CostTable, scale: float | None = None):
        from matplotlib.patches import Rectangle

        self.ax, self.table = ax, table
        n = len(table.config["block_out_channels"])
        self.pos = _positions(n)
        self.scale = scale or max(v["params"] for v in table.stage_costs().values())
        ax.plot([p[0] for p in self.pos.values()], [p[1] for p in self.pos.values()], "-", color="0.85", lw=6,
                zorder=0)
        self.boxes, self.names, self.counts = {}, {}, {}
        for stage, (x, y) in self.pos.items():
            color = "tab:orange" if stage in (f"DW-{n}", "Mid", "UP-1") else "tab:blue"
            self.boxes[stage] = ax.add_patch(Rectangle((x, y), 0, 0, color=color, alpha=0.75, zorder=1))
            self.names[stage] = ax.text(x, y + 0.6, stage, ha="center", va="bottom", fontsize=8)
            self.counts[stage] = ax.text(x, y - 0.6, "", ha="center", va="top", fontsize=8, color="0.25")
        self.title = ax.set_title("", fontsize=10)
        ax.set_xlim(-0.8, 2 * n + 0.8)
        ax.set_ylim(-0.9, n + 1.7)
        ax.set_aspect("equal")
        ax.axis("off")

    dynamic_names = True

    def update(self, layout: K.Layout | None = None, title: str | None = None) -> dict:
        """Resize and relabel the boxes for a student layout (None: the teacher); return the stage costs."""
        costs = self.table.stage_costs(layout)
        if not self.dynamic_names:
            for stage, (x, y) in self.pos.items():
                p = max(costs[stage]["params"], 0)
                side = 1.3 * np.sqrt(p / self.scale)
                self.boxes[stage].set_bounds(x - side / 2, y - side / 2, side, side)
                self.counts[stage].set_text(f"{p / 1e6:,.0f} M" if p >= 1e6 else f"{p / 1e3:,.0f} k")
            return costs
        layout = layout or K.derive(self.table.config, K.Recipe())[1]
        summary = layout.summary()
        for stage, (x, y) in self.pos.items():
            p = max(costs[stage]["params"], 0)
            side = 1.3 * np.sqrt(p / self.scale)
            self.boxes[stage].set_bounds(x - side / 2, y - side / 2, side, side)
            self.names[stage].set_text(f"{stage}\n{summary.get(stage, '')}")
            self.counts[stage].set_text(f"{p / 1e6:,.0f} M" if p >= 1e6 else f"{p / 1e3:,.0f} k")
        total = sum(v["params"] for v in costs.values())
        self.title.set_text(title or f"{total / 1e6:,.0f} M parameters in the stages (box area = parameters)")
        return costs


def draw_unet(table: C.CostTable, layouts: dict, figsize=(11, 3.2)) -> Figure:
    """A figure with one U diagram per (title -> layout or None for the teacher), on one size scale."""
    fig = Figure(figsize=figsize, dpi=90)
    axes = fig.subplots(1, len(layouts))
    axes = np.atleast_1d(axes)
    for ax, (title, layout) in zip(axes, layouts.items()):
        total = table.predict(layout)["params"] if layout is not None else table.params_total
        UDiagram(ax, table).update(layout, f"{title}: {total / 1e9:.2f} B params")
    fig.tight_layout()
    return fig


class RecipePanel:
    """Sliders for transformer depth per stage and block removal, redrawing params/FLOPs/memory at SDXL scale."""

    def __init__(self, table: C.CostTable | None = None, recipe: K.Recipe | None = None):
        import ipywidgets as W

        self.table = table or C.sdxl_table()
        cfg = self.table.config
        self.n = len(cfg["block_out_channels"])
        t_down, t_mid, t_up = K.teacher_depths(cfg)
        self.base = self.table.predict(K.derive(cfg, K.Recipe())[1])
        self.depth = {}
        for key, d in [(f"DW-{s + 1}", t_down[s]) for s in range(self.n)] + [("Mid", t_mid or 0)] + \
                [(f"UP-{s + 1}", t_up[s]) for s in range(self.n)]:
            if d:
                lo = 0 if key == "Mid" else 1
                w = W.IntSlider(value=d, min=lo, max=d, description=f"{key} depth", continuous_update=True,
                                style={"description_width": "80px"})
                w.add_class(f"koala-depth-{key.lower()}")
                self.depth[key] = w
        self.blocks = {}
        for s in range(self.n):
            w = W.Checkbox(value=False, description=f"BK: drop 2nd block of DW-{s + 1} + middle of UP-{self.n - s}",
                           indent=False)
            w.add_class(f"koala-drop-{s + 1}")
            self.blocks[s] = w
        self.label = W.HTML()
        self.label.add_class("koala-readout")
        self.image = W.Image(format="png")
        self.image.add_class("koala-plot")
        self.last_update_ms = float("nan")
        self._hold = False
        self._build_figure()
        if recipe is not None:
            self.set_recipe(recipe)
        for w in list(self.depth.values()) + list(self.blocks.values()):
            w.observe(self._on_change, names="value")
        self.update()
        self.widget = W.VBox([W.HBox([W.VBox(list(self.depth.values())), W.VBox(list(self.blocks.values()))]),
                              self.label, self.image])

    def _build_figure(self) -> None:
        self.fig = Figure(figsize=(10, 3.3), dpi=72)
        self.ax_u, ax = self.fig.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
        self.u = UDiagram(self.ax_u, self.table)
        self.bars = ax.bar(["params", "FLOPs/step", "fp16 weights"], [1, 1, 1],
                           color=["tab:blue", "tab:green", "tab:purple"])
        self.bar_text = [ax.text(i, 1.02, "", ha="center", fontsize=9) for i in range(3)]
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_ylim(0, 1.12)
        ax.set_ylabel("student / SDXL")
        self.u.title.set_text("student stages (box area = parameters)")
        self.fig.tight_layout()
        # blitting: draw the static parts once, then only the artists a move changes
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        self.canvas = FigureCanvasAgg(self.fig)
        # stage names and the title stay static here (the layout goes to the HTML readout): text is slow to draw
        self.u.title.set_text("student stages (box area = parameters)")
        for stage, t in self.u.names.items():
            t.set_text(stage)
        self.u.dynamic_names = False
        self.dynamic = list(self.u.boxes.values()) + list(self.u.counts.values()) + list(self.bars) + self.bar_text
        for a in self.dynamic:
            a.set_animated(True)
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(self.fig.bbox)

    def set_recipe(self, recipe: K.Recipe) -> None:
        """Move the widgets to a named recipe (e.g. KOALA-700M), redrawing once."""
        d = dict(recipe.depth)
        self._hold = True
        try:
            for key, w in self.depth.items():
                w.value = 0 if key == "Mid" and recipe.drop_mid else d.get(key, w.max)
            for s, w in self.blocks.items():
                w.value = bool(recipe.drop_down[s]) if s < len(recipe.drop_down) else False
        finally:
            self._hold = False
        self.update()

    def _on_change(self, change) -> None:
        if not self._hold:
            self.update()

    def recipe(self) -> K.Recipe:
        """The recipe the widgets describe."""
        drop_down = tuple((1,) if self.blocks[s].value else () for s in range(self.n))
        drop_up = tuple((1,) if self.blocks[self.n - 1 - s].value else () for s in range(self.n))
        depth = tuple((k, w.value) for k, w in self.depth.items() if not (k == "Mid" and w.value == 0))
        mid = self.depth.get("Mid")
        return K.Recipe("slider", drop_down, drop_up, depth, drop_mid=bool(mid is not None and mid.value == 0))

    def state(self) -> dict:
        """Params, FLOPs and weight memory of the current recipe and their ratios to the teacher."""
        _, layout = K.derive(self.table.config, self.recipe())
        pred = self.table.predict(layout)
        pred["layout"] = layout
        for k in ("params", "flops", "weights_gb"):
            pred[f"{k}_ratio"] = pred[k] / self.base[k]
        return pred

    def update(self) -> None:
        """Recompute the prediction at the current widget values and redraw."""
        t0 = time.perf_counter()
        st = self.state()
        self.u.update(st["layout"])
        vals = [st["params_ratio"], st["flops_ratio"], st["weights_gb_ratio"]]
        for bar, txt, v in zip(self.bars, self.bar_text, vals):
            bar.set_height(v)
            txt.set_y(v + 0.02)
            txt.set_text(f"{v:.0%}")
        self.canvas.restore_region(self.background)
        for a in self.dynamic:
            a.axes.draw_artist(a)
        self.image.value = canvas_png(self.canvas)
        self.label.value = (f"<b>{st['params'] / 1e9:.3f} B params</b> ({st['params_ratio']:.0%} of SDXL) · "
                            f"<b>{st['flops'] / 1e12:.2f} TFLOPs</b> per step at 1024² ({st['flops_ratio']:.0%}) · "
                            f"<b>{st['weights_gb']:.2f} GB</b> fp16 weights · {st['transformer_layers']} transformer "
                            f"layers, {st['resnets']} resnets<br><span style='font-size:90%'>"
                            + " · ".join(f"{k} {v}" for k, v in st["layout"].summary().items()) + "</span>")
        self.last_update_ms = (time.perf_counter() - t0) * 1e3

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
