"""Figures, tables and computed sentences of notebook 07 (CAST), and its slider panel.

- figures: the draft tree (`draw_tree`), latency curves (`latency_figure`), verify cost (`verify_cost_figure`),
  draft agreement (`agreement_figure`), speedups (`speedup_figure`), CAST's choice per batch (`per_batch_figure`);
- readable tables with units: `comparison_table` (every method, one row each), `per_batch_table`,
  `verify_cost_table`, `choice_table` (what a policy chose in a live run), `overheads_table`, `paper_beside_ours`;
- computed prose (`nblib.prose`): `verdict_lines` (CAST against the strongest other method at every batch size),
  `per_batch_sentence`, `verify_cost_sentence`, `agreement_sentence`, `sampling_sentence`; `lookup` reads a key a
  benchmark file may or may not hold ("not measured" where it does not).

`TreeSweepPanel` is a `nblib.panel.SliderPanel` (CSS hooks `nb07-*`): a move is a
table look-up into the precomputed sweep plus a full redraw of one Agg figure.
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .. import prose, style
from ..panel import SliderPanel
from .bench import BASELINE, PLAIN, PLAIN_TORCH, tree_choice

NOT_MEASURED = "not measured"
FEATURE = "feature (EAGLE)"


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
        fig = Figure(figsize=(11, 3.8), dpi=80, layout="constrained")
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
                         integer_x=True, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)
        if ax1.get_legend() is not None:              # one legend, outside the data, for both panels
            ax1.get_legend().remove()
    return fig


def verify_cost_figure(rows: list[dict], context: int | None = None) -> Figure:
    """Cost of verifying n tree tokens relative to one decode step (each path's own n = 1) beside FLOPs; one legend
    below both panels, outside the data."""
    with style.context():
        fig = Figure(figsize=(11, 4.4), dpi=80, layout="constrained")
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
                         f"one target call on n tokens{ctx}, log scale")
        ax2.set_ylim(0, max(max(r["hf_rel"], r.get("torch_rel", 0), r["lean_rel"]) for r in rows) * 1.15)
        style.label_axes(ax2, "tree tokens verified in one call (n)", "cost / one decode step",
                         "the same, linear scale: FLOPs (dotted) leave the plot")
        for ax in (ax1, ax2):
            if ax.get_legend() is not None:
                ax.get_legend().remove()
        handles, labels = ax1.get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=2)
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
        fig = Figure(figsize=(11, 4.2), dpi=80, layout="constrained")
        ax = fig.subplots()
        done = [r for r in rows if r.get("speedup") is not None and r.get("speedup") == r.get("speedup")]
        labels = []
        for r in done:
            lab = method_label(r["method"], r.get("draft", "–"))
            if lab not in labels:
                labels.append(lab)
        batches = sorted({r["batch"] for r in done})
        width = 0.8 / max(1, len(batches))
        for j, b in enumerate(batches):
            vals = {method_label(r["method"], r.get("draft", "–")): r["speedup"] for r in done if r["batch"] == b}
            xs = [i + (j - (len(batches) - 1) / 2) * width for i, lab in enumerate(labels) if lab in vals]
            ax.bar(xs, [vals[lab] for lab in labels if lab in vals], width, color=style.COLORS[j], label=f"batch {b}")
        ax.axhline(1, color="k", ls="--", lw=1, label="transformers' generate (= 1)")
        ax.set_ylim(0, max([1.0] + [r["speedup"] for r in done]) * 1.08)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize="small")
        style.label_axes(ax, "", "tokens/s ÷ generate greedy's", "speedup over transformers' generate, same run",
                         loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)   # outside the bars
    return fig


# --- reading a benchmark file that may predate a key ------------------------------------------------------------------
def lookup(result: dict, key: str, default=None):
    """`result[key]`, else the first nested dict (one level down, e.g. "headline" or "sampling") that holds `key`,
    else `default`: a benchmark file written before a measurement existed reads as "not measured", not a KeyError."""
    if not isinstance(result, dict):
        raise TypeError(f"result must be a benchmark dict (cast.bench.load_benchmark()), got {type(result).__name__}")
    if key in result:
        return result[key]
    for v in result.values():
        if isinstance(v, dict) and key in v:
            return v[key]
    return default


def method_label(method: str, draft: str | None = "–") -> str:
    """A method as a reader names it: "chain · feature draft", "plain loop (no draft)", "transformers' generate"."""
    names = {BASELINE: "transformers' generate", PLAIN: "plain loop",
             PLAIN_TORCH: "plain loop, torch's matmul", "HF assisted": "assisted generation",
             "HF prompt lookup": "prompt lookup"}
    name = names.get(method, method)
    if draft in (None, "–", "-", ""):
        return name
    return f"{name} · {draft.split()[0]} draft"


def _batches(head: dict) -> list[int]:
    return sorted(int(k.rsplit("_b", 1)[1]) for k in head if k.startswith("cast_over_plain_b"))


def _competitor(head: dict, b: int) -> dict | None:
    comp = head.get("strongest_competitor") or {}
    return comp.get(str(b), comp.get(b))


# --- readable tables ----------------------------------------------------------------------------------------------
def comparison_table(rows: list[dict]):
    """Every method of a comparison in one row: tokens/s and the ratio to the plain loop per batch size, tokens per
    target call at the smallest batch, and whether every output matched `generate` (no all-empty column)."""
    import pandas as pd

    batches = sorted({r["batch"] for r in rows})
    order: list[tuple[str, str]] = []
    for r in rows:
        k = (r["method"], r.get("draft", "–"))
        if k not in order:
            order.append(k)
    out = []
    for m, d in order:
        mine = {r["batch"]: r for r in rows if (r["method"], r.get("draft", "–")) == (m, d)}
        row = {"method": method_label(m, d)}
        for b in batches:
            r = mine.get(b, {})
            row[f"batch {b}: tokens/s"] = r.get("tokens_per_s", np.nan)
            row[f"batch {b}: ÷ plain loop"] = r.get("over_plain", np.nan)
        first = mine.get(batches[0], {})
        row[f"tokens per target call (batch {batches[0]})"] = first.get("accepted_per_call", np.nan)
        checks = [r["lossless"] for r in mine.values() if "lossless" in r]
        row["same output as generate"] = ("yes" if all(checks) else "NO") if checks else "not checked"
        out.append(row)
    df = pd.DataFrame(out)
    for c in df.columns[1:-1]:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    return df.dropna(axis=1, how="all")


def per_batch_table(result: dict):
    """`cast.bench.per_batch(result)` with numbers as floats (NaN where the file does not hold them) and readable names."""
    import pandas as pd

    from .bench import per_batch, strongest_competitor

    df = per_batch(result).copy()
    for c in df.columns:
        if c not in ("batch", "strongest other method"):
            df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    rng = ["CAST / plain: lowest round", "CAST / plain: highest round"]
    df = df.drop(columns=[c for c in rng if df[c].isna().all()])  # a file without paired rounds: no empty columns
    best = [strongest_competitor(result["rows"], int(b)) for b in df["batch"]]
    df["strongest other method"] = [method_label(x["method"], x["draft"]) if x else NOT_MEASURED for x in best]
    return df.rename(columns={"batch": "batch size", "CAST / plain": "CAST ÷ plain loop",
                              "CAST / plain: lowest round": "CAST ÷ plain: lowest round",
                              "CAST / plain: highest round": "CAST ÷ plain: highest round",
                              "its / plain": "strongest other ÷ plain loop"})


def per_batch_formats(df) -> dict:
    """style.table formats for `per_batch_table`: "not measured" where a value is missing."""
    def fmt(decimals, unit=""):
        return lambda v: NOT_MEASURED if v != v else f"{v:,.{decimals}f}{unit}"
    out = {}
    for c in df.columns:
        if c in ("batch size", "strongest other method"):
            continue
        if c.endswith("(%)"):
            out[c] = fmt(0, " %")
        elif "tok/s" in c:
            out[c] = fmt(1)
        else:
            out[c] = fmt(2)
    return out


def verify_cost_table(rows: list[dict]):
    """The verify-cost curve as a table: n, ms per call of each path, and each relative to its own one-token step."""
    import pandas as pd

    out = []
    for r in rows:
        row = {"tree tokens (n)": int(r["n"]), "kernel (ms)": 1e3 * r["lean_s"]}
        if "torch_s" in r:
            row["torch matmul (ms)"] = 1e3 * r["torch_s"]
        row["transformers (ms)"] = 1e3 * r["hf_s"]
        row["kernel ÷ 1 step"] = r["lean_rel"]
        if "torch_rel" in r:
            row["torch matmul ÷ 1 step"] = r["torch_rel"]
        row["transformers ÷ 1 step"] = r["hf_rel"]
        row["FLOPs ÷ 1 step"] = r["flops_rel"]
        out.append(row)
    return pd.DataFrame(out)


def overheads_table(result: dict):
    """What a decoding step costs beyond the model's forwards, per batch size, as measured into CAST's latency
    profiles (the benchmark file's "overheads"; ms), and the tree size up to which the skinny kernel beat torch's
    matmul; None when the file predates these measurements."""
    import pandas as pd

    over = result.get("overheads") if isinstance(result, dict) else None
    if not over:
        return None

    def ms(v):
        return np.nan if v is None else 1e3 * float(v)

    rows = [{"batch size": int(b), "per drafted step (ms)": ms(o.get("step_s")),
             "per draft level (ms)": ms(o.get("level_s")), "per step without a draft (ms)": ms(o.get("nodraft_s")),
             "skinny kernel up to (rows)": np.nan if o.get("kernel_rows") is None else float(o["kernel_rows"])}
            for b, o in sorted(over.items(), key=lambda kv: int(kv[0]))]
    return pd.DataFrame(rows).dropna(axis=1, how="all")


def choice_table(choices: dict):
    """What CAST chose per batch size in a live run ({batch: SpecResult or tree_choice dict}) as a table."""
    import pandas as pd

    out = []
    for b, c in sorted(choices.items()):
        res = None
        if not isinstance(c, dict):
            res, c = c, tree_choice(c.shapes)
        out.append({"batch size": int(b), "steps": int(c["steps"]), "steps without a draft (%)": 100 * c["no_draft_share"],
                    "levels per drafted step": c["levels_mean"], "max width per drafted step": c["width_mean"],
                    "nodes verified per drafted step": c["verified_mean"],
                    "tokens per target call": res.tokens_per_call if res is not None else np.nan})
    return pd.DataFrame(out).dropna(axis=1, how="all")


def paper_beside_ours(head: dict, sampling_speedup=None):
    """The paper's headline claims beside this suite's measured numbers (from `cast.bench.headline`): CAST against
    the strongest other method at the smallest and largest batch size (not only the fixed tree), as a DataFrame."""
    import pandas as pd

    bs = _batches(head)
    if not bs:
        raise ValueError("headline has no cast_over_plain_b<B> key: pass cast.bench.headline(result)")
    b1, bmax = bs[0], bs[-1]

    def x(v):
        return NOT_MEASURED if v is None else prose.times(v)

    def gain(a, b):
        return NOT_MEASURED if a is None or b is None else f"{100 * (a / b - 1):+.0f} %"

    def vs_best(b):
        best, ours = _competitor(head, b), head.get(f"cast_over_plain_b{b}")
        if not best or best.get("over_plain") is None or ours is None:
            return NOT_MEASURED
        if best["method"] == PLAIN:
            return f"{gain(ours, best['over_plain'])} (the strongest is the plain loop itself; CAST {x(ours)} of it)"
        return (f"{gain(ours, best['over_plain'])} ({method_label(best['method'], best['draft'])}: "
                f"{x(best['over_plain'])} the plain loop, CAST {x(ours)})")

    tree = " / ".join(gain(head.get(f"cast_over_generate_b{b}"), head.get(f"eagle_tree_over_generate_b{b}"))
                      for b in dict.fromkeys((b1, bmax)))
    feat, tok = head.get("draft_top1_agreement"), head.get("token_draft_top1_agreement")
    paper = "paper (GPU, 8-70 B targets)"
    ours = "ours (SmolLM2-135M, CPU)"
    rows = [
        {"claim": f"speedup over plain decoding, batch {b1}", paper: "up to 5.2x",
         ours: f"CAST {x(head.get(f'cast_over_generate_b{b1}'))} transformers' generate, "
               f"{x(head.get(f'cast_over_plain_b{b1}'))} the plain loop"},
        {"claim": f"CAST over the strongest other method, batch {b1}", paper: "+5 to +20 % (EAGLE-2/3 fixed trees)",
         ours: vs_best(b1)},
        {"claim": f"CAST over the strongest other method, batch {bmax}", paper: "larger at batch 8 (e.g. 2.6x vs 2.0x)",
         ours: vs_best(bmax)},
        {"claim": "CAST over the fixed EAGLE-2 tree, batch " + " / ".join(map(str, dict.fromkeys((b1, bmax)))),
         paper: "(the fixed trees above)", ours: tree},
        {"claim": "CAST ÷ plain loop at its worst batch size", paper: "-",
         ours: x(head.get("cast_min_over_plain_any_batch"))},
        {"claim": "sampling at temperature 0.7, ÷ plain sampled loop", paper: "-", ours: x(sampling_speedup)},
        {"claim": "draft top-1 agreement (feature / token draft)", paper: "-",
         ours: " / ".join(NOT_MEASURED if v is None else prose.percent(v) for v in (feat, tok))},
        {"claim": "output identical to greedy decoding", paper: "yes (lossless)",
         ours: "yes, every method and batch" if head.get("lossless") else "NO (see the table)"},
    ]
    return pd.DataFrame(rows)


# --- computed sentences -------------------------------------------------------------------------------------------
def verdict_lines(head: dict, margin: float = 0.03) -> list[str]:
    """One verdict per batch size: CAST (feature draft) over the plain loop beside the strongest other method's ratio,
    both from `cast.bench.headline`; a gap within `margin` is called no win."""
    lines = []
    for b in _batches(head):
        ours = head.get(f"cast_over_plain_b{b}")
        best = _competitor(head, b)
        if ours is None or not best or best.get("over_plain") is None:
            lines.append(f"batch {b}: {NOT_MEASURED}")
            continue
        lines.append(f"batch {b}: " + prose.verdict(("CAST", ours), {method_label(best["method"], best["draft"]):
                                                                   best["over_plain"]},
                                                    unit="x the plain loop", margin=margin))
    return lines


def _list(xs: list) -> str:
    xs = [str(x) for x in xs]
    return xs[0] if len(xs) == 1 else ", ".join(xs[:-1]) + " and " + xs[-1]


def per_batch_sentence(head: dict, margin: float = 0.03) -> str:
    """Where CAST beats the plain loop (by more than `margin`), where it is level, where it is slower, and what it
    chose there (share of steps without a draft, when the file records it)."""
    win, level, lose = [], [], []
    for b in _batches(head):
        v = head.get(f"cast_over_plain_b{b}")
        if v is None:
            continue
        (win if v > 1 + margin else lose if v < 1 - margin else level).append((b, v))
    parts = []
    if win:
        parts.append("CAST beats the plain loop at batch " + _list(f"{b} ({prose.times(v)})" for b, v in win))
    if level:
        parts.append("is level with it (within " + prose.times(margin) + ") at batch "
                     + _list(f"{b} ({prose.times(v)})" for b, v in level))
    if lose:
        parts.append("is slower at batch " + _list(f"{b} ({prose.times(v)})" for b, v in lose))
    text = ("; ".join(parts) + ".") if parts else "No batch size has a CAST measurement in this file."
    text = text[0].upper() + text[1:]
    share = head.get("cast_no_draft_share") or {}
    known = {int(b): v for b, v in share.items() if v is not None}
    if known:
        text += " Share of CAST's steps that drafted nothing (it verified the plain next token only): " + _list(
            f"{prose.percent(v)} at batch {b}" for b, v in sorted(known.items())) + "."
        if lose:
            rounds = head.get("cast_over_plain_rounds") or {}
            mostly_plain = [b for b, _ in lose if known.get(b) is not None and 0.5 <= known[b] < 1]
            mostly_drafted = [b for b, _ in lose if known.get(b) is not None and known[b] < 0.5]
            if mostly_plain:
                text += (" Where it is slower and skipped the draft on most steps (batch " + _list(mostly_plain)
                         + "), the gap is the steps it spends learning which choice pays (a few drafted steps at "
                         "the start where its profile said drafting could pay, then a probe of the losing choice now "
                         "and then, the draft first reading every token it skipped) and what its steps without a "
                         "draft cost beyond the plain loop's.")
            for b in mostly_drafted:
                r = rounds.get(str(b), rounds.get(b))
                text += (f" At batch {b} it drafted on {prose.percent(1 - known[b])} of its steps: its own timings "
                         "rated a drafted step no slower than a plain one, yet the trees it drafted did not pay"
                         + (f" (its paired rounds ranged from {prose.times(r['lo'])} to {prose.times(r['hi'])}: "
                            "a near tie that the timing noise of single steps tips either way)" if r else "") + ".")
    else:
        text += (" Which tree it chose per step (and how often no draft at all) is " + NOT_MEASURED
                 + " in this benchmark file; the live table of CAST's choice in this notebook shows it for this machine.")
    mn = head.get("cast_min_over_plain_any_batch")
    if mn is not None:
        text += f" Its worst batch size is {prose.times(mn)} the plain loop."
    return text


def verify_cost_sentence(rows: list[dict], context: int | None = None) -> str:
    """What the curve shows, quoted from the same rows: the kernel's cost of verifying a few tokens, torch's matmul's,
    and what FLOPs alone predict."""
    by = {r["n"]: r for r in rows}
    few = [n for n in (4, 8) if n in by] or [n for n in sorted(by) if n > 1][:2]
    if not few:
        raise ValueError("the verify-cost curve needs at least one n > 1 to say anything")
    where = f" (cache {context} tokens)" if context else ""
    text = ("In the curve above" + where + ", verifying "
            + _list(f"{n} tokens costs {prose.times(by[n]['lean_rel'])}" for n in few)
            + " one decode step with the kernel")
    if "torch_rel" in by[few[0]]:
        text += " (with torch's matmul " + _list(prose.times(by[n]["torch_rel"]) for n in few)
        if 2 in by:
            text += f"; its 2-token call already costs {prose.times(by[2]['torch_rel'])}"
        text += ")"
    text += ", where FLOPs alone predict " + _list(prose.times(by[n]["flops_rel"], 0) for n in few) + "."
    big = max(by)
    text += (f" At n = {big} the kernel path costs {prose.times(by[big]['lean_rel'])} one step and transformers' "
             f"forward {prose.times(by[big]['hf_rel'])}.")
    return text


def agreement_sentence(agreement: dict, report: dict | None = None) -> str:
    """How often each draft's first choice is the target's, per depth, and (from the training report's log) how much
    the last half of training still added."""
    feat, tok = agreement.get("feature", {}), agreement.get("token", {})
    depths = sorted(int(k[5:]) for k in feat)
    text = ""
    if feat:
        text = ("The feature draft's first choice is the target's on " + prose.percent(feat[f"agree{depths[0]}"])
                + f" of the tokens at depth {depths[0]}")
        if len(depths) > 1:
            text += " (" + _list(f"{prose.percent(feat[f'agree{d}'])} at depth {d}" for d in depths[1:]) + ")"
        text += "; "
    if tok:
        text += f"the token draft's on {prose.percent(tok['agree1'])} at depth 1."
    log = (report or {}).get("log")
    if isinstance(log, list) and len(log) >= 4 and "agree1" in log[-1]:
        mid = log[len(log) // 2]
        text += (f" Training the feature draft: held-out depth-1 agreement {prose.percent(mid['agree1'])} at step "
                 f"{mid['step']:,}, {prose.percent(log[-1]['agree1'])} at step {log[-1]['step']:,}: the second half "
                 f"of training added {prose.number(100 * (log[-1]['agree1'] - mid['agree1']), ' points', 1)}.")
    return text.strip()


def sampling_sentence(live: dict | None, shipped_speedup, temperature: float = 0.7, shipped_policy=None) -> str:
    """The sampled speedup over the plain sampled loop: this run's (if measured) and the benchmark file's
    (`sampling_speedup_t07`, or "not measured" when the file predates it)."""
    parts = []
    if live:
        best = max((k for k, v in live.items() if isinstance(v, dict) and "speedup" in v),
                   key=lambda k: live[k]["speedup"])
        v = live[best]
        parts.append(f"In this run at temperature {live['temperature']:g} (batch 1, interleaved repeats: "
                     f"{live['repeats']}, median), {best} reaches {prose.times(v['speedup'])} the plain sampled loop's "
                     f"tokens/s ({prose.number(v['tokens_per_call'])} tokens per target call, against "
                     f"{prose.number(live['plain']['tokens_per_call'])} for the plain loop).")
    if shipped_speedup is None:
        parts.append(f"The shipped benchmark file: sampling at temperature {temperature:g} {NOT_MEASURED}.")
    else:
        who = f" with {shipped_policy}" if shipped_policy else ""
        parts.append(f"The shipped benchmark (temperature {temperature:g}, batch 1{who}): "
                     f"{prose.times(shipped_speedup)} the plain sampled loop.")
    return " ".join(parts)


def per_batch_figure(result: dict, margin: float = 0.03) -> Figure:
    """CAST ÷ plain loop and the strongest other method ÷ plain loop against batch size (a line at 1 = the plain loop,
    a band of +-margin around it); beside it, where the file records it, CAST's choice: its share of steps with no
    draft. Legends sit outside the data."""
    df = per_batch_table(result)
    share = df["CAST: steps without a draft (%)"]
    with style.context():
        fig = Figure(figsize=(11, 4.2), dpi=80, layout="constrained")
        if share.notna().any():
            ax, ax2 = fig.subplots(1, 2, width_ratios=[1.7, 1])
        else:
            ax, ax2 = fig.subplots(), None
        b = df["batch size"].to_numpy()
        gen = df["generate (tok/s)"] / df["plain loop (tok/s)"]
        ax.axhspan(1 - margin, 1 + margin, color="0.88", lw=0, label=f"plain loop ± {margin:g} (level)")
        ax.axhline(1, color="k", ls="--", lw=1, label="plain loop (= 1)")
        cast_y = df["CAST ÷ plain loop"].to_numpy(dtype=float)
        if "CAST ÷ plain: lowest round" in df:  # median of paired rounds, bars from the lowest to the highest round
            err = np.vstack([cast_y - df["CAST ÷ plain: lowest round"], df["CAST ÷ plain: highest round"] - cast_y])
            ax.errorbar(b, cast_y, yerr=err, fmt="o-", color=style.COLORS[0], lw=2.4, ms=8, capsize=4,
                        label="CAST · feature draft\n(median of paired rounds,\nbars: lowest-highest)")
        else:
            ax.plot(b, cast_y, "o-", color=style.COLORS[0], lw=2.4, ms=8, label="CAST · feature draft")
        ax.plot(b, df["strongest other ÷ plain loop"], "s-", color=style.COLORS[1],
                label="strongest other method\n(named unless it is the plain loop)")
        for x, y, ours, name in zip(b, df["strongest other ÷ plain loop"], df["CAST ÷ plain loop"],
                                    df["strongest other method"]):
            if y == y and name != method_label(PLAIN):
                ax.annotate(name, (x, y), textcoords="offset points", xytext=(0, 9 if y >= ours else -17),
                            ha="center", fontsize="x-small", color=style.COLORS[1])
        ax.plot(b, gen, "^:", color="0.45", label="transformers' generate")
        ax.set_xscale("log", base=2)
        ax.set_xticks(b)
        style.integer_axis(ax, "x")
        ax.set_xlim(b.min() / 1.6, b.max() * 1.6)
        ax.set_ylim(0, max(1.2, float(np.nanmax(np.r_[df["CAST ÷ plain loop"], df["strongest other ÷ plain loop"],
                                                          gen]))) * 1.12)
        legend = dict(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0) if ax2 is None else \
            dict(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
        style.label_axes(ax, "batch size (sequences decoded together)", "tokens/s ÷ plain loop's",
                         "speculation's own gain per batch size", fontsize="small", **legend)
        if ax2 is not None:
            bars = ax2.bar([str(int(x)) for x in b], share.fillna(0), color=style.COLORS[0])
            ax2.bar_label(bars, labels=[NOT_MEASURED if v != v else f"{v:.0f} %" for v in share], fontsize="small")
            ax2.set_ylim(0, 110)
            style.label_axes(ax2, "batch size", "steps without a draft (%)", "CAST's choice: no draft at all")
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
