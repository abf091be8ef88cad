"""Notebook 03's figures and its slider panel: position bias, the meta-prompt's history, batch size / selective.

`LWEPanel` moves over cached run records only: a slider picks the update batch size B, a checkbox
switches Selective LWE on or off; a move looks the run up (its metrics are computed once, at build) and
moves the bars and curves. The widget machinery (readout, image, observers, timing, the CSS hooks
`nb03-batch`, `nb03-selective`, `nb03-readout`, `nb03-plot`) is `nblib.panel.SliderPanel`'s.
"""
from __future__ import annotations

import html

import numpy as np
from matplotlib.figure import Figure

from .. import style
from ..panel import SliderPanel
from .bench import LABELS, key
from .methods import formula_calls_per_case
from .metrics import cumulative_accuracy, summarize

METRICS = ("accuracy", "consistency", "pair_accuracy")


def position_bias_figure(records: dict, methods=("vanilla", "logprob", "ssp", "lwe@4", "selective@4")) -> Figure:
    """How often each judge said "A" when the answers are shown in the original and in the swapped order."""
    present = [m for m in methods if m in records]
    with style.context():
        fig = Figure(figsize=(10, 3.4), dpi=90)
        ax1, ax2 = fig.subplots(1, 2)
        x = np.arange(len(present))
        said = [summarize(records[m])["said_a"] for m in present]
        swap = [np.mean([r["swap_verdict"] == "A" for r in records[m].cases]) for m in present]
        truth = np.mean([r["better"] == "A" for r in records[present[0]].cases])
        ax1.bar(x - 0.2, said, 0.4, label="original order", color=style.COLORS[0])
        ax1.bar(x + 0.2, swap, 0.4, label="answers swapped", color=style.COLORS[1])
        ax1.axhline(truth, color="k", ls="--", lw=1, label="truly A (original order)")
        ax1.set_xticks(x, [_short(m) for m in present], rotation=15)
        ax1.set_ylim(0, 1.4)
        ax1.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
        style.label_axes(ax1, "", 'share of verdicts "A"', "a position-biased judge says A in both orders",
                         loc="upper center", fontsize="small", ncol=2)
        cons = [summarize(records[m])["consistency"] for m in present]
        acc = [summarize(records[m])["accuracy"] for m in present]
        ax2.bar(x - 0.2, acc, 0.4, label="accuracy", color=style.COLORS[2])
        ax2.bar(x + 0.2, np.nan_to_num(cons), 0.4, label="position consistency", color=style.COLORS[3])
        ax2.axhline(0.5, color="0.4", ls=":", lw=1, label="coin flip")
        ax2.set_xticks(x, [_short(m) for m in present], rotation=15)
        ax2.set_ylim(0, 1.4)
        ax2.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
        style.label_axes(ax2, "", "share of cases", "accuracy and consistency (fallback included)",
                         loc="upper center", fontsize="small", ncol=3)
        fig.tight_layout()
    return fig


def _short(k: str) -> str:
    m, _, b = k.partition("@")
    name = {"vanilla": "vanilla", "logprob": "log-prob", "ssp": "SSP", "lwe": "LWE", "selective": "Sel. LWE"}[m]
    return f"{name} B={b}" if b else name


def meta_history_figure(rec) -> Figure:
    """The meta-prompt's length after each update, accepted rewrites and rejected ones (under 726 characters)."""
    with style.context():
        fig = Figure(figsize=(8, 3), dpi=90)
        ax = fig.subplots()
        h = [e for e in rec.meta_history if e["reason"] != "initial"]
        xs = [e["after_case"] for e in h]
        ax.step([0] + xs, [len(rec.meta_history[0]["text"])] + [len(e["text"]) for e in h], where="post",
                color=style.COLORS[0], label="meta-prompt in use")
        ok = [e for e in h if e["accepted"]]
        bad = [e for e in h if not e["accepted"]]
        ax.plot([e["after_case"] for e in ok], [e["candidate_chars"] for e in ok], "o", color=style.COLORS[2],
                label="rewrite accepted")
        ax.plot([e["after_case"] for e in bad], [e["candidate_chars"] for e in bad], "x", color=style.COLORS[3],
                ms=9, mew=2, label="rewrite rejected")
        ax.axhline(rec.config["min_meta_chars"], color="k", ls="--", lw=1,
                   label=f"{rec.config['min_meta_chars']}-character rule")
        top = max([len(e["text"]) for e in rec.meta_history] + [e["candidate_chars"] for e in h] + [1])
        ax.set_ylim(0, top * 1.2)
        style.label_axes(ax, "cases judged", "characters", f"{LABELS[rec.method]}: the meta-prompt over the stream",
                         integer_x=True, loc="lower right", fontsize="small")
        fig.tight_layout()
    return fig


def trace_html(rec, index: int = 0, chars: int = 700) -> str:
    """One LWE step as HTML: meta-prompt, generated rubric, judgment and verdict, self-feedback, the rewrite."""
    rows = [r for r in rec.cases if r.get("rubric") is not None]
    if not rows:
        raise ValueError(f"the {rec.method} run has no LWE step to trace (no case went through the rubric)")
    r = rows[index % len(rows)]
    ver = r.get("meta_version", 0)
    meta = next((h["text"] for h in rec.meta_history if h["version"] == ver and h["accepted"]),
                rec.meta_history[0]["text"])
    upd = next((h for h in rec.meta_history if h["reason"] != "initial" and r["id"] in h.get("batch", [])), None)

    def box(title, text):
        t = html.escape(text if len(text) <= chars else text[:chars] + " [...]")
        return (f"<p style='margin:6px 0 2px'><b>{title}</b></p><pre style='white-space:pre-wrap;margin:0;"
                f"padding:6px;border:1px solid #ccc;max-height:220px;overflow:auto'>{t}</pre>")

    parts = [f"<div><p>case <code>{html.escape(r['id'])}</code> · meta-prompt version {ver}</p>",
             box("meta-prompt M", meta), box("generated evaluation prompt (rubric)", r["rubric"]),
             box(f"judgment → verdict {r['verdict']} ({r['verdict_from']}; label {r['better']})", r["judgment"]),
             box("self-feedback", r.get("feedback", ""))]
    if upd is not None:
        state = "accepted" if upd["accepted"] else upd["reason"]
        parts.append(box(f"rewritten meta-prompt after case {upd['after_case']}: {state} "
                         f"({upd['candidate_chars']} characters)", upd["candidate"] or "(empty)"))
    return "".join(parts) + "</div>"


class LWEPanel(SliderPanel):
    """A batch-size slider and a selective toggle over cached LWE / Selective LWE runs."""

    prefix = "nb03"
    figsize = (11.5, 3.6)
    blit = True          # every axis keeps its limits: only the bars, the error bar and the curves are redrawn

    def __init__(self, records: dict, batch: int = 4):
        import ipywidgets as W

        self.records = records
        self.bs = sorted({r.config["batch_size"] for r in records.values() if r.method in ("lwe", "selective")
                          and key("lwe", r.config["batch_size"]) in records
                          and key("selective", r.config["batch_size"]) in records})
        if not self.bs:
            raise ValueError("the panel needs an LWE and a Selective LWE run for at least one batch size")
        self.summaries = {k: summarize(r) for k, r in records.items()}
        self.curves = {k: cumulative_accuracy(r) for k, r in records.items()}
        super().__init__({
            "batch": W.SelectionSlider(options=self.bs, value=batch if batch in self.bs else self.bs[0],
                                       description="update batch B"),
            "selective": W.Checkbox(value=True, description="selective (LWE only on inconsistent cases)"),
        })

    def build(self, fig) -> None:
        """Metric bars (vanilla vs the chosen judge), calls per case, and the running accuracy over the stream."""
        self.ax_m, self.ax_c, self.ax_s = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.1, 1, 1.3]})
        x = np.arange(len(METRICS))
        van = self.summaries.get("vanilla", {})
        self.ax_m.bar(x - 0.2, [np.nan_to_num(van.get(m, 0)) for m in METRICS], 0.4, color="0.65",
                      label="vanilla")
        self.bars_m = self.ax_m.bar(x + 0.2, [0] * len(METRICS), 0.4, color=style.COLORS[0], label="this judge")
        self.err = self.ax_m.errorbar([0.2], [0], yerr=[[0], [0]], fmt="none", ecolor="k", capsize=4)
        self.ax_m.set_xticks(x, ["accuracy", "consistency", "pair acc."])
        self.ax_m.set_ylim(0, 1.05)
        style.label_axes(self.ax_m, "", "share of cases", "quality (95 % interval)", loc="upper right",
                         fontsize="small")
        names = ["vanilla", "SSP", "LWE", "Sel. LWE"]
        self.bars_c = self.ax_c.bar(names, [0] * 4, color=["0.65", "0.65", style.COLORS[1], style.COLORS[0]],
                                    label="measured")
        (self.formula,) = self.ax_c.plot(names, [0] * 4, "_", color="k", ms=22, mew=2, label="formula")
        top = max(formula_calls_per_case("lwe", b) for b in self.bs) * 1.35
        self.ax_c.set_ylim(0, top)
        style.label_axes(self.ax_c, "", "LLM calls per case", "cost", loc="upper left", fontsize="small")
        n = max(len(c) for c in self.curves.values())
        (self.cur_v,) = self.ax_s.plot([], [], color="0.5", label="vanilla")
        (self.cur,) = self.ax_s.plot([], [], color=style.COLORS[0], label="this judge")
        self.upd = self.ax_s.scatter([], [], marker="v", color=style.COLORS[2], zorder=3, label="accepted rewrite")
        self.ax_s.set_xlim(0, n + 1)
        self.ax_s.set_ylim(0, 1.05)
        style.label_axes(self.ax_s, "cases judged", "running accuracy", "over the stream", integer_x=True,
                         loc="lower right", fontsize="small")
        return [*self.bars_m, *self.err.lines[1], *self.err.lines[2], *self.bars_c, self.formula, self.cur_v,
                self.cur, self.upd]

    def compute(self, batch: int, selective: bool) -> dict:
        """The chosen run's metrics, its cost beside the other judges', its running accuracy (look-ups only)."""
        k = key("selective" if selective else "lwe", batch)
        s = self.summaries[k]
        rec = self.records[k]
        cost = [self.summaries[m]["calls_per_case"] if m in self.summaries else np.nan
                for m in ("vanilla", "ssp")] + [self.summaries[key("lwe", batch)]["calls_per_case"],
                                               self.summaries[key("selective", batch)]["calls_per_case"]]
        r = self.summaries[key("selective", batch)].get("inconsistent_share", 1.0)
        formula = [formula_calls_per_case("vanilla"), formula_calls_per_case("ssp"),
                   formula_calls_per_case("lwe", batch, run_swap=self.records[key("lwe", batch)].config["run_swap"]),
                   formula_calls_per_case("selective", batch, r)]
        ups = [h["after_case"] for h in rec.meta_history if h["accepted"] and h["reason"] != "initial"]
        return {"key": k, "batch": batch, "selective": selective, "summary": s, "cost": cost, "formula": formula,
                "curve": self.curves[k], "vanilla_curve": self.curves.get("vanilla"), "updates": ups}

    def draw(self, st: dict) -> str:
        """Move the bars, the error bar, the cost bars and the curves; return the readout."""
        s = st["summary"]
        for bar, m in zip(self.bars_m, METRICS, strict=True):
            bar.set_height(np.nan_to_num(s[m]))
        seg = self.err.lines[2][0]
        seg.set_segments([np.array([[0.2, s["accuracy_lo"]], [0.2, s["accuracy_hi"]]])])
        for cap, y in zip(self.err.lines[1], (s["accuracy_lo"], s["accuracy_hi"]), strict=True):
            cap.set_data([0.2], [y])
        for bar, v in zip(self.bars_c, st["cost"], strict=True):
            bar.set_height(np.nan_to_num(v))
        self.bars_c[2].set_alpha(1.0 if not st["selective"] else 0.45)
        self.bars_c[3].set_alpha(1.0 if st["selective"] else 0.45)
        self.formula.set_ydata(st["formula"])
        c = st["curve"]
        self.cur.set_data(np.arange(1, len(c) + 1), c)
        if st["vanilla_curve"] is not None:
            v = st["vanilla_curve"]
            self.cur_v.set_data(np.arange(1, len(v) + 1), v)
        ups = [u for u in st["updates"] if 0 < u <= len(c)]
        self.upd.set_offsets(np.array([[u, c[u - 1]] for u in ups]) if ups else np.empty((0, 2)))
        name = LABELS["selective" if st["selective"] else "lwe"]
        cons = "n/a" if s["consistency"] != s["consistency"] else f"{s['consistency']:.2f}"
        extra = f" · inconsistent share r = {s['inconsistent_share']:.2f}" if st["selective"] else ""
        return (f"B {st['batch']} · {name}: accuracy {s['accuracy']:.2f} [{s['accuracy_lo']:.2f}, "
                f"{s['accuracy_hi']:.2f}] · consistency {cons} · {s['calls_per_case']:.2f} calls/case "
                f"(formula {st['formula'][3 if st['selective'] else 2]:.2f}){extra} · "
                f"{s['accepted_updates']}/{s['updates']} rewrites accepted · {s['n']} cases")


class RPanel(SliderPanel):
    """What Selective LWE buys as a function of the judge: calls per case and accuracy against r, slider r and B.

    The curves are scripted judges (simulations, `scripted.sweep`) run through the real code; `points` are
    real judges ({"label", "r", "B", "calls_per_case", "accuracy", "accuracy_lo", "accuracy_hi"}), drawn at
    their measured r. CSS hooks `nb03-r-r`, `nb03-r-batch`, `nb03-r-readout`, `nb03-r-plot`.
    """

    prefix = "nb03-r"
    figsize = (11.5, 3.8)
    blit = True

    def __init__(self, sweep, points=(), r: float = 0.3, batch: int = 4):
        import ipywidgets as W

        need = {"r", "B", "method", "calls_per_case", "formula", "accuracy", "accuracy_lo", "accuracy_hi"}
        if not need <= set(sweep.columns):
            raise ValueError(f"sweep needs the columns {sorted(need)} (lwe.scripted.sweep makes them)")
        self.sweep = sweep
        self.rs = sorted(sweep.r.unique())
        self.bs = sorted(int(b) for b in sweep.B.unique())
        self.points = list(points)
        self.tables = {(b, m): sweep[(sweep.B == b) & (sweep.method == m)].sort_values("r")
                       for b in self.bs for m in ("vanilla", "lwe", "selective")}
        super().__init__({
            "r": W.SelectionSlider(options=self.rs, value=min(self.rs, key=lambda x: abs(x - r)),
                                   description="scripted judge's r"),
            "batch": W.SelectionSlider(options=self.bs, value=batch if batch in self.bs else self.bs[0],
                                       description="update batch B"),
        })

    def build(self, fig) -> list:
        """Calls per case against r (left) and accuracy against r (right): scripted curves, real judges as points."""
        self.ax_c, self.ax_a = fig.subplots(1, 2)
        ax = self.ax_c
        (self.l_lwe,) = ax.plot([], [], "-o", ms=4, color=style.COLORS[1], label="LWE (scripted)")
        (self.l_sel,) = ax.plot([], [], "-o", ms=4, color=style.COLORS[0], label="Selective LWE (scripted)")
        (self.l_form,) = ax.plot([], [], ":", color="k", lw=1.2, label="2 + r (3 + 1/B)")
        (self.l_goal,) = ax.plot([], [], "--", color="0.5", lw=1, label="0.6 x LWE (the goal)")
        self.v_c = ax.axvline(self.rs[0], color="0.3", lw=0.8)
        for i, p in enumerate(self.points):
            ax.plot([p["r"]], [p["calls_per_case"]], marker="*^sD"[i % 4], ms=11, ls="none",
                    color=style.COLORS[(i + 2) % len(style.COLORS)], label=p["label"])
        ax.set_xlim(-0.02, 1.05)
        ax.set_ylim(0, max(formula_calls_per_case("lwe", b) for b in self.bs) * 1.3)
        style.label_axes(ax, "inconsistent share r", "LLM calls per case", "cost", loc="upper left",
                         fontsize="x-small", ncol=2)
        ax = self.ax_a
        (self.a_van,) = ax.plot([], [], "-", color="0.55", label="vanilla (scripted)")
        (self.a_lwe,) = ax.plot([], [], "-", color=style.COLORS[1], label="LWE (scripted)")
        (self.a_sel,) = ax.plot([], [], "-", color=style.COLORS[0], label="Selective LWE (scripted)")
        self.v_a = ax.axvline(self.rs[0], color="0.3", lw=0.8)
        self.err_sel = ax.errorbar([0], [0], yerr=[[0], [0]], fmt="o", color=style.COLORS[0], capsize=4)
        for i, p in enumerate(self.points):
            ax.errorbar([p["r"]], [p["accuracy"]], yerr=[[p["accuracy"] - p["accuracy_lo"]],
                                                          [p["accuracy_hi"] - p["accuracy"]]],
                        fmt="*^sD"[i % 4], ms=10, capsize=3, color=style.COLORS[(i + 2) % len(style.COLORS)],
                        label=p["label"])
        ax.set_xlim(-0.02, 1.05)
        ax.set_ylim(0, 1.15)
        style.label_axes(ax, "inconsistent share r", "accuracy", "quality (95 % intervals)", loc="lower left",
                         fontsize="x-small", ncol=2)
        return [self.l_lwe, self.l_sel, self.l_form, self.l_goal, self.v_c, self.a_van, self.a_lwe, self.a_sel,
                self.v_a, self.err_sel.lines[0], *self.err_sel.lines[1], *self.err_sel.lines[2]]

    def compute(self, r: float, batch: int) -> dict:
        """The scripted curves at B and the chosen r's row (look-ups only)."""
        t = {m: self.tables[(batch, m)] for m in ("vanilla", "lwe", "selective")}
        row = {m: t[m][t[m].r == r].iloc[0] for m in t}
        return {"r": r, "batch": batch, "curves": t, "row": row,
                "ratio": row["selective"].calls_per_case / row["lwe"].calls_per_case}

    def draw(self, st: dict) -> str:
        """Move the curves, the r marker and the chosen point; return the readout."""
        t, row, r = st["curves"], st["row"], st["r"]
        self.l_lwe.set_data(t["lwe"].r, t["lwe"].calls_per_case)
        self.l_sel.set_data(t["selective"].r, t["selective"].calls_per_case)
        xs = np.linspace(0, 1, 11)
        self.l_form.set_data(xs, [formula_calls_per_case("selective", st["batch"], x) for x in xs])
        self.l_goal.set_data([0, 1.05], [0.6 * formula_calls_per_case("lwe", st["batch"])] * 2)
        self.v_c.set_xdata([r, r])
        self.v_a.set_xdata([r, r])
        for line, m in ((self.a_van, "vanilla"), (self.a_lwe, "lwe"), (self.a_sel, "selective")):
            line.set_data(t[m].r, t[m].accuracy)
        s = row["selective"]
        self.err_sel.lines[0].set_data([r], [s.accuracy])
        self.err_sel.lines[2][0].set_segments([np.array([[r, s.accuracy_lo], [r, s.accuracy_hi]])])
        for cap, y in zip(self.err_sel.lines[1], (s.accuracy_lo, s.accuracy_hi), strict=True):
            cap.set_data([r], [y])
        lw, v = row["lwe"], row["vanilla"]
        return (f"scripted judge (simulation), r = {r:.1f}, B = {st['batch']}: Selective LWE "
                f"{s.calls_per_case:.2f} calls/case vs LWE {lw.calls_per_case:.2f} ({st['ratio']:.2f}x; goal <= 0.60) · "
                f"accuracy Selective {s.accuracy:.2f} [{s.accuracy_lo:.2f}, {s.accuracy_hi:.2f}], "
                f"LWE {lw.accuracy:.2f}, vanilla {v.accuracy:.2f} · {int(s.n)} cases")


def margins_figure(rec, priors: dict) -> Figure:
    """Per-order log-prob margins of a log-prob run: original order against swapped, with the position priors.

    A judge without position bias puts every case on the line m_swapped = -m (its verdict flips with the
    answers); a judge that prefers the first-shown answer moves the cloud up and right. The debiased gate
    calls a case consistent when the two margins fall on opposite sides of the prior b (the shaded quadrants).
    """
    m = np.array([r["margin"] for r in rec.cases], float)
    s = np.array([r.get("swap_margin") for r in rec.cases], float)
    right = np.array([r["better"] == "A" for r in rec.cases])
    with style.context():
        fig = Figure(figsize=(10.5, 3.8), dpi=90)
        ax1, ax2 = fig.subplots(1, 2)
        lim = float(np.nanmax(np.abs(np.r_[m, s, list(priors.values())]))) * 1.1 + 0.1
        ax1.plot([-lim, lim], [lim, -lim], color="0.6", lw=1, ls=":", label="no position bias: m_swapped = -m")
        ax1.scatter(m[right], s[right], s=16, color=style.COLORS[0], label="better answer shown first")
        ax1.scatter(m[~right], s[~right], s=16, color=style.COLORS[1], marker="x", label="better answer shown second")
        for i, (name, b) in enumerate(priors.items()):
            ax1.axvline(b, color=style.COLORS[2 + i], lw=1, ls="--", label=f"prior b: {name}")
            ax1.axhline(b, color=style.COLORS[2 + i], lw=1, ls="--")
        ax1.set_xlim(-lim, lim)
        ax1.set_ylim(-lim, lim)
        style.label_axes(ax1, "margin m, original order (nats)", "margin, answers swapped (nats)",
                         "log P(A) - log P(B) after the vanilla prompt", loc="lower left", fontsize="x-small")
        bins = np.linspace(-lim, lim, 25)
        ax2.hist(m, bins=bins, alpha=0.6, color=style.COLORS[0], label="original order")
        ax2.hist(s, bins=bins, alpha=0.6, color=style.COLORS[1], label="answers swapped")
        for i, (name, b) in enumerate(priors.items()):
            ax2.axvline(b, color=style.COLORS[2 + i], lw=1.5, ls="--", label=f"prior b: {name}")
        ax2.axvline(0, color="k", lw=0.8)
        style.integer_axis(ax2, "y")
        style.label_axes(ax2, "margin (nats; > 0: says A)", "cases", "one order at a time",
                         loc="upper left", fontsize="x-small")
        fig.tight_layout()
    return fig


def trace_summary(rec, index: int = 0) -> str:
    """One traced LWE step in words, generated from the run record (what the trace above shows)."""
    from .parse import parse_verdict

    rows = [r for r in rec.cases if r.get("rubric") is not None]
    if not rows:
        return "This run has no LWE step to trace (every case passed the selective gate)."
    r = rows[index]
    upd = next((h for h in rec.meta_history if r["id"] in h.get("batch", [])), None)
    parsed = parse_verdict(r.get("judgment") or "")
    how = ("the judgment names it" if r["verdict_from"] == "parse" else
           "the judgment names no verdict, so it comes from the log-probabilities of [[A and [[B after it"
           if r["verdict_from"] == "logprob" else "no verdict could be obtained")
    out = (f"Case `{r['id']}`: the meta-prompt (version {r.get('meta_version', 0)}) wrote a rubric of "
           f"{len(r['rubric'])} characters; the judgment has {len(r.get('judgment') or '')} characters and its "
           f"verdict is {r['verdict']} ({how}; parsed: {parsed}), against the label {r['better']}: "
           f"{'right' if r['verdict'] == r['better'] else 'wrong'}. The self-feedback's label is "
           f"{r.get('feedback_label')!r}.")
    if upd is not None:
        state = ("was accepted and replaced M" if upd["accepted"] else
                 f"was not used ({upd['reason']}), so M stayed as it was")
        out += (f" After case {upd['after_case']} the rewrite of M had {upd['candidate_chars']} characters and "
                f"{state}.")
    return out
