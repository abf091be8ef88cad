"""KOALA's figures and slider panel: the U-Net drawn as stages, and a recipe panel at SDXL scale.

The panel's expensive part is one `koala.costs.CostTable` (SDXL built once on the meta
device, FLOPs counted per unit); each slider move derives the recipe (config
arithmetic) and sums the table's precomputed units, then blits the boxes and bars
that changed (`nblib.panel.SliderPanel` with `blit = True`; CSS hooks `nb01-*`).
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .. import style
from ..panel import SliderPanel
from . import costs as C
from . import recipes as K


LABEL_BOX = {"facecolor": "white", "edgecolor": "none", "pad": 0.3, "alpha": 0.85}   # text stays readable on the U
DX, DY = 1.6, 1.7   # spacing of the stage boxes (data units; the largest box side is 1.3)


def _positions(n: int) -> dict:
    """x, y of every stage box in a U: encoder down the left, mid at the bottom, decoder up the right."""
    pos = {f"DW-{i + 1}": (DX * i, DY * (n - i)) for i in range(n)}
    pos["Mid"] = (DX * n, 0.0)
    pos.update({f"UP-{i + 1}": (DX * (n + 1 + i), DY * (1 + i)) for i in range(n)})
    return pos


class UDiagram:
    """The U-Net's stages as boxes on a U (box area = parameters), with artists updated in place."""

    def __init__(self, ax, table: C.CostTable, scale: float | None = None, dynamic_names: bool = True):
        from matplotlib.patches import Rectangle

        self.ax, self.table, self.dynamic_names = ax, table, dynamic_names
        n = len(table.config["block_out_channels"])
        self.pos = _positions(n)
        self.scale = scale or max(v["params"] for v in table.stage_costs().values())
        ax.plot([p[0] for p in self.pos.values()], [p[1] for p in self.pos.values()], "-", color="0.85", lw=6,
                zorder=0)
        self.boxes, self.names, self.counts = {}, {}, {}
        lowest, other = style.COLORS[1], style.COLORS[0]
        for stage, (x, y) in self.pos.items():
            color = lowest if stage in (f"DW-{n}", "Mid", "UP-1") else other
            self.boxes[stage] = ax.add_patch(Rectangle((x, y), 0, 0, color=color, alpha=0.75, zorder=1))
            # names above the box, counts below it (the mid block: both below, clear of DW-n and UP-1)
            self.names[stage] = ax.text(x, y, stage, ha="center", va="top" if stage == "Mid" else "bottom",
                                        fontsize="small", bbox=LABEL_BOX)
            self.counts[stage] = ax.text(x, y, "", ha="center", va="top", fontsize="small", color="0.25",
                                         bbox=LABEL_BOX)
            if not dynamic_names:
                self.names[stage].set_y(y - 0.75 - 0.5 if stage == "Mid" else y + 0.75)
        self.title = ax.set_title("")
        ax.set_xlim(-0.9, DX * 2 * n + 0.9)
        ax.set_ylim(-2.0, DY * n + 1.3)
        ax.set_aspect("equal")
        ax.axis("off")

    def update(self, layout: K.Layout | None = None, title: str | None = None) -> dict:
        """Resize the boxes for a student layout (None: the teacher), relabel if `dynamic_names`; return stage costs."""
        costs = self.table.stage_costs(layout)
        for stage, (x, y) in self.pos.items():
            p = max(costs[stage]["params"], 0)
            side = 1.3 * np.sqrt(p / self.scale)
            self.boxes[stage].set_bounds(x - side / 2, y - side / 2, side, side)
            gap = max(side / 2, 0.08) + 0.1
            self.counts[stage].set_text("removed" if p == 0 else f"{p / 1e6:,.0f} M" if p >= 1e6 else f"{p / 1e3:,.0f} k")
            self.counts[stage].set_y(y - gap)
            if self.dynamic_names:   # a panel's names are static artists: they sit clear of the largest box
                self.names[stage].set_y(y - gap - 0.5 if stage == "Mid" else y + gap)
        if self.dynamic_names:
            summary = (layout or K.derive(self.table.config, K.Recipe())[1]).summary()
            for stage, t in self.names.items():
                t.set_text(f"{stage}\n{summary.get(stage, '')}")
            total = sum(v["params"] for v in costs.values())
            self.title.set_text(title or f"{total / 1e6:,.0f} M parameters in the stages (box area = parameters)")
        return costs


def draw_unet(table: C.CostTable, layouts: dict, figsize=(11, 3.2)) -> Figure:
    """A figure with one U diagram per (title -> layout or None for the teacher), on one size scale."""
    with style.context():
        fig = Figure(figsize=figsize, dpi=90)
        axes = np.atleast_1d(fig.subplots(1, len(layouts)))
        for ax, (title, layout) in zip(axes, layouts.items(), strict=True):
            total = table.predict(layout)["params"] if layout is not None else table.params_total
            UDiagram(ax, table).update(layout, f"{title}: {total / 1e9:.2f} B params")
        fig.tight_layout()
    return fig


class RecipePanel(SliderPanel):
    """Sliders for transformer depth per stage and block removal, redrawing params/FLOPs/memory at SDXL scale.

    Sliders (names for `set`, CSS hooks `nb01-<name>` with `_` -> `-`): `depth_dw_1` ... `depth_mid` ...
    `depth_up_1` ... (IntSliders, stages with transformers only) and `drop_1` ... `drop_n` (Checkboxes: BK
    removal of DW-s's 2nd block and UP-(n+1-s)'s middle one). `depth` and `blocks` index the same widgets
    by stage ("DW-3") and by encoder stage (0-based).
    """

    prefix = "nb01"
    blit = True
    figsize = (10.5, 3.5)

    def __init__(self, table: C.CostTable | None = None, recipe: K.Recipe | None = None):
        import ipywidgets as W

        self.table = table or C.sdxl_table()
        cfg = self.table.config
        self.n = len(cfg["block_out_channels"])
        t_down, t_mid, t_up = K.teacher_depths(cfg)
        self.base = self.table.predict(K.derive(cfg, K.Recipe())[1])
        stages = [(f"DW-{s + 1}", t_down[s]) for s in range(self.n)] + [("Mid", t_mid or 0)] + \
            [(f"UP-{s + 1}", t_up[s]) for s in range(self.n)]
        self.teacher_depth = {key: d for key, d in stages if d}
        init = self.recipe_values(recipe or K.Recipe())
        self.depth = {key: W.IntSlider(value=init[_depth_name(key)], min=0 if key == "Mid" else 1, max=d,
                                       description=f"{key} depth", style={"description_width": "80px"})
                      for key, d in self.teacher_depth.items()}
        self.blocks = {s: W.Checkbox(value=init[f"drop_{s + 1}"], indent=False,
                                     description=f"BK removal in DW-{s + 1} and UP-{self.n - s}",
                                     tooltip=f"drop the 2nd block of DW-{s + 1} and the middle block of UP-{self.n - s}",
                                     style={"description_width": "initial"}, layout=W.Layout(width="auto"))
                       for s in range(self.n)}
        super().__init__({**{_depth_name(k): w for k, w in self.depth.items()},
                          **{f"drop_{s + 1}": w for s, w in self.blocks.items()}})

    def controls(self):
        """Depth sliders in one column, block-removal checkboxes in the other."""
        import ipywidgets as W

        return W.HBox([W.VBox(list(self.depth.values())), W.VBox(list(self.blocks.values()))])

    def build(self, fig) -> list:
        """The U diagram (stage names static: the layout goes to the readout) and the ratio bars; return the movers."""
        self.ax_u, ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
        self.u = UDiagram(self.ax_u, self.table, dynamic_names=False)  # text is slow to draw: names stay static
        self.u.title.set_text("student stages (box area = parameters)")
        self.bars = ax.bar(["params", "FLOPs/step", "fp16 weights"], [1, 1, 1], color=style.COLORS[:3])
        self.bar_text = [ax.text(i, 1.02, "", ha="center", fontsize="small") for i in range(3)]
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_ylim(0, 1.15)
        ax.grid(axis="x", visible=False)
        style.label_axes(ax, ylabel="student / SDXL")
        return list(self.u.boxes.values()) + list(self.u.counts.values()) + list(self.bars) + self.bar_text

    def recipe_values(self, recipe: K.Recipe) -> dict:
        """The slider values (by name) that describe `recipe`."""
        d = dict(recipe.depth)
        out = {_depth_name(key): 0 if key == "Mid" and recipe.drop_mid else d.get(key, top)
               for key, top in self.teacher_depth.items()}
        out.update({f"drop_{s + 1}": bool(recipe.drop_down[s]) if s < len(recipe.drop_down) else False
                    for s in range(self.n)})
        return out

    def recipe_of(self, **values) -> K.Recipe:
        """The recipe that these slider values describe (pure)."""
        drop = [bool(values[f"drop_{s + 1}"]) for s in range(self.n)]
        drop_down = tuple((1,) if drop[s] else () for s in range(self.n))
        drop_up = tuple((1,) if drop[self.n - 1 - s] else () for s in range(self.n))
        depth = {key: values[_depth_name(key)] for key in self.teacher_depth}
        drop_mid = depth.get("Mid") == 0
        return K.Recipe("slider", drop_down, drop_up, tuple((k, v) for k, v in depth.items()
                                                             if not (k == "Mid" and v == 0)), drop_mid=drop_mid)

    def set_recipe(self, recipe: K.Recipe) -> None:
        """Move the widgets to a named recipe (e.g. KOALA-700M), redrawing once."""
        self.set(**self.recipe_values(recipe))

    def recipe(self) -> K.Recipe:
        """The recipe the widgets describe."""
        return self.recipe_of(**self.values())

    def compute(self, **values) -> dict:
        """Params, FLOPs and weight memory of the recipe at these slider values, and their ratios to the teacher."""
        _, layout = K.derive(self.table.config, self.recipe_of(**values))
        pred = self.table.predict(layout)
        pred["layout"] = layout
        for k in ("params", "flops", "weights_gb"):
            pred[f"{k}_ratio"] = pred[k] / self.base[k]
        return pred

    def draw(self, st: dict) -> str:
        """Resize the stage boxes and the ratio bars; return the HTML readout (totals and the layout)."""
        self.u.update(st["layout"])
        vals = [st["params_ratio"], st["flops_ratio"], st["weights_gb_ratio"]]
        for bar, txt, v in zip(self.bars, self.bar_text, vals, strict=True):
            bar.set_height(v)
            txt.set_y(v + 0.02)
            txt.set_text(f"{v:.0%}")
        return (f"<b>{st['params'] / 1e9:.3f} B params</b> ({st['params_ratio']:.0%} of SDXL) · "
                f"<b>{st['flops'] / 1e12:.2f} TFLOPs</b> per step at 1024² ({st['flops_ratio']:.0%}) · "
                f"<b>{st['weights_gb']:.2f} GB</b> fp16 weights · {st['transformer_layers']} transformer "
                f"layers, {st['resnets']} resnets<br><span style='font-size:90%'>"
                + " · ".join(f"{k} {v}" for k, v in st["layout"].summary().items()) + "</span>")


def _depth_name(stage: str) -> str:
    return "depth_" + stage.lower().replace("-", "_")


def sample_grid(models: dict, names: list, states, steps: int = 20, guidance: float = 2.0, seed: int = 0) -> Figure:
    """One row per model, one column per digit zero..nine: the same captions and starting noise in every row."""
    import torch

    from . import metrics, tiny

    caps = tiny.caption_index(torch.arange(10), torch.zeros(10, dtype=torch.long))
    with style.context():
        fig = Figure(figsize=(10, 1.15 * len(names) + 0.3), dpi=90)
        axes = np.atleast_2d(fig.subplots(len(names), 10))
        for r, name in enumerate(names):
            imgs = metrics.sample(models[name][0], caps, states, seed=seed, steps=steps, guidance=guidance)
            for c in range(10):
                axes[r, c].imshow(imgs[c, 0], cmap="gray_r", vmin=-1, vmax=1)
                axes[r, c].set_xticks([])
                axes[r, c].set_yticks([])
            axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize="small")
        for c in range(10):
            axes[0, c].set_title(tiny.WORDS[c], fontsize="small")
        fig.tight_layout()
    return fig


MARKERS = "o^sDvP*X"


def cost_quality_figure(costs: dict, quality: dict, latency: dict, reference: str = "teacher",
                        batches=(1, 16), level: float = 0.95) -> Figure:
    """Every model's cost against its quality: FLOPs and latency (x the reference) vs caption accuracy and FD.

    Columns: FLOPs per denoising step, then latency per image at each batch in `batches` (median ratio to the
    reference over the interleaved rounds, the range as error bars). Rows: caption accuracy (with its bootstrap
    interval at `level`) and the Frechet distance (lower is better). One marker per model, one legend for all.
    """
    from . import metrics

    missing = [n for n in costs if n not in quality or n not in latency]
    if missing or reference not in costs:
        raise ValueError(f"every model needs costs, quality and latency, and {reference!r} must be one of them; "
                         f"incomplete: {missing}, models: {sorted(costs)}")
    names = list(costs)
    ref_flops = costs[reference]["flops_per_step"]
    with style.context():
        fig = Figure(figsize=(4.1 * (1 + len(batches)) + 2.6, 6.4), dpi=90)
        axes = np.atleast_2d(fig.subplots(2, 1 + len(batches), sharey="row"))
        handles = []
        for k, name in enumerate(names):
            q, lat = quality[name], latency[name]
            lo, hi = metrics.accuracy_interval(q["caption_acc"], q["n"], level=level)
            acc, fd = q["caption_acc"], q["fd"]
            xs = [(costs[name]["flops_per_step"] / ref_flops, None)]
            for b in batches:
                m = lat[f"latency_ratio_b{b}"]
                r_lo, r_hi = lat[f"latency_ratio_b{b}_range"]
                xs.append((m, [[m - r_lo], [r_hi - m]]))
            kw = dict(marker=MARKERS[k % len(MARKERS)], color=style.COLORS[k % len(style.COLORS)], ms=8, capsize=3,
                      ls="none", mfc="white" if name == reference else None, mew=1.8)
            for c, (x, xerr) in enumerate(xs):
                h = axes[0, c].errorbar(x, acc, xerr=xerr, yerr=[[acc - lo], [hi - acc]], **kw)
                axes[1, c].errorbar(x, fd, xerr=xerr, **kw)
            handles.append(h)
        xlabels = ["FLOPs per step (x teacher)"] + [f"latency per image, batch {b} (x teacher)" for b in batches]
        for c, xl in enumerate(xlabels):
            for r in range(2):
                axes[r, c].axvline(1.0, color="0.6", ls=":", lw=1)
            style.label_axes(axes[1, c], xl, "FD (lower is better)" if c == 0 else "")
            style.label_axes(axes[0, c], "", f"caption accuracy [{level:.0%}]" if c == 0 else "",
                             "cost: FLOPs" if c == 0 else f"cost: latency, batch {batches[c - 1]}")
        fig.legend(handles, names, loc="center right", fontsize="small", title="model", frameon=False)
        fig.suptitle("cheaper to the left; better up (accuracy) and down (FD)", y=0.99)
        fig.tight_layout(rect=(0, 0, 1 - 2.6 / fig.get_figwidth(), 0.97))
    return fig
