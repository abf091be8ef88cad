"""C3PO against one greedy answer of the most powerful model, under any price sheet (the price lens).

The cascade pays K samples on every model it visits; the strongest baseline on a ladder whose top
model is strong is often one greedy answer of that model. `versus_greedy` puts C3PO's points (one per
budget, each the mean over the same random splits) beside greedy MPM on the same test queries;
`repriced` re-prices the same traces' token counts under a `nblib.cost.PriceSheet` (no model runs
again), and `break_even` finds the price ratio (dearest / cheapest model) at which a C3PO point starts
to beat greedy MPM: within `tol` of its accuracy at <= `max_cost_ratio` of its cost.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..cost import PriceSheet, flops_sheet, scaled_sheet
from . import guarantee as G
from .cascade import Prepared, evaluate
from .traces import CascadeTraces

TOL = 0.01  # "equal quality": within 1 point of greedy MPM's accuracy
MAX_COST_RATIO = 0.7  # "cheaper": at most 0.7x greedy MPM's mean cost


def repriced(traces: CascadeTraces, sheet: PriceSheet) -> CascadeTraces:
    """The same traces with every cost re-priced from token counts under `sheet` (each of K samples reads the prompt;
    a greedy last rung reads it once)."""
    if traces.prompt_tokens is None:
        raise ValueError("these traces have no prompt token counts (built before the price lens, or from an LLM "
                         "server): rebuild them with c3po.task_traces(...)")
    reads = [1 if traces.last_greedy and i == traces.n_models - 1 else traces.k for i in range(traces.n_models)]
    cost = np.stack([sheet.cost(m, reads[i] * traces.prompt_tokens, traces.tokens[i])
                     for i, m in enumerate(traces.models)]).astype(float)
    gcost = None
    if traces.greedy_tokens is not None:
        gcost = np.stack([sheet.cost(m, traces.prompt_tokens, traces.greedy_tokens[i])
                          for i, m in enumerate(traces.models)]).astype(float)
    return replace(traces, cost=cost, greedy_cost=gcost, unit=sheet.unit)


def ladder_sheet(traces: CascadeTraces) -> PriceSheet:
    """The traces' own FLOPs per token of each model (mean realised FLOPs / tokens of its greedy decodes)."""
    if traces.greedy_tokens is None or traces.greedy_cost is None:
        raise ValueError("these traces have no greedy decodes: build them with greedy answers")
    per = traces.greedy_cost.sum(1) / (traces.greedy_tokens + traces.prompt_tokens[None]).sum(1)
    return flops_sheet({m: float(p) for m, p in zip(traces.models, per)})


def versus_greedy(traces: CascadeTraces, alpha: float = 0.1, budgets=None, n_splits: int = 200, n_ss: int = 50,
                  n_cal: int = 50, seed: int = 0, mode: str = "reuse") -> list[dict]:
    """C3PO's point at each budget beside greedy MPM on the same test queries of the same splits.

    Budgets default to 20 multiples of greedy MPM's mean cost (0.05x to 20x). Each row: budget, C3PO's
    accuracy and mean cost (mean over feasible splits), greedy MPM's, their difference and ratio, and
    whether the point beats greedy MPM (within TOL of its accuracy at <= MAX_COST_RATIO of its cost, or
    more accurate at no more cost).
    """
    if traces.greedy is None:
        raise ValueError("versus_greedy needs the traces' greedy answers (task_traces takes them)")
    gold = traces.require_gold()
    g_ok = traces.greedy[-1] == gold
    g_cost = traces.greedy_cost[-1]
    if budgets is None:
        budgets = float(g_cost.mean()) * np.geomspace(0.05, 20.0, 20)
    ev = evaluate(traces)
    ss, cal, test = G.splits(traces.n_queries, n_ss, n_cal, n_splits, seed)
    pre = Prepared(ev, ss, cal)
    g_acc = float(g_ok[test].mean())
    g_mean = float(g_cost[test].mean())
    rows = []
    for b in budgets:
        run = G.run_splits(ev, float(b), alpha, ss, cal, test, mode, pre)
        ok = run.feasible
        if not ok.any():
            continue
        acc, cost = float(np.nanmean(run.accuracy[ok])), float(np.nanmean(run.mean_cost[ok]))
        diff, ratio = acc - g_acc, cost / g_mean
        rows.append({"budget": float(b), "budget_x_greedy": float(b) / g_mean, "c3po_accuracy": acc,
                     "c3po_mean_cost": cost, "greedy_accuracy": g_acc, "greedy_mean_cost": g_mean,
                     "accuracy_diff": diff, "cost_ratio": ratio, "infeasible": run.infeasible,
                     "violation": run.violation, "beats_greedy": beats(diff, ratio)})
    return rows


def beats(accuracy_diff: float, cost_ratio: float, tol: float = TOL, max_cost_ratio: float = MAX_COST_RATIO) -> bool:
    """Whether a point beats greedy MPM: within tol of its accuracy at <= max_cost_ratio, or better at <= 1x cost."""
    return bool((accuracy_diff >= -tol and cost_ratio <= max_cost_ratio) or (accuracy_diff > 0 and cost_ratio <= 1.0))


def best_point(rows: list[dict], tol: float = TOL) -> dict | None:
    """The cheapest point within tol of greedy MPM's accuracy, else the most accurate point (None if no rows)."""
    if not rows:
        return None
    close = [r for r in rows if r["accuracy_diff"] >= -tol]
    if close:
        return min(close, key=lambda r: r["cost_ratio"])
    return max(rows, key=lambda r: r["accuracy_diff"])


def break_even(traces: CascadeTraces, ratios, base: PriceSheet | None = None, alpha: float = 0.1,
               n_splits: int = 200, seed: int = 0) -> list[dict]:
    """For each price ratio (dearest / cheapest model), C3PO's best point against greedy MPM, re-priced.

    `base` (default: the traces' own FLOPs per token) fixes where each model sits between the cheapest and
    the dearest on a log scale; `scaled_sheet` stretches it to each ratio.
    """
    base = base if base is not None else ladder_sheet(traces)
    out = []
    for r in ratios:
        rows = versus_greedy(repriced(traces, scaled_sheet(base, float(r))), alpha, n_splits=n_splits, seed=seed)
        best = best_point(rows)
        out.append({"ratio": float(r), "beats_greedy": bool(best is not None and best["beats_greedy"]),
                    **({} if best is None else {k: best[k] for k in ("accuracy_diff", "cost_ratio",
                                                                      "budget_x_greedy")})})
    return out


def first_paying_ratio(curve: list[dict]) -> float | None:
    """The smallest ratio in a break_even curve from which every larger ratio beats greedy MPM (None: never)."""
    paying = None
    for row in sorted(curve, key=lambda r: r["ratio"], reverse=True):
        if not row["beats_greedy"]:
            break
        paying = row["ratio"]
    return paying


def greedy_last(traces: CascadeTraces) -> CascadeTraces:
    """The cascade with its last model answering once, greedily (an adaptation, not the paper's C3PO).

    The last rung always answers (its threshold is 0), so its vote share is never read; only its answer and
    cost matter. Here they are its greedy answer and the cost of one greedy decode, which is also the label-free
    pseudo-label the regret is measured against. Every earlier rung still draws K samples and votes.
    """
    if traces.greedy is None or traces.greedy_cost is None:
        raise ValueError("greedy_last needs the traces' greedy answers (task_traces takes them)")
    answer, share, cost, tokens = (a.copy() for a in (traces.answer, traces.share, traces.cost, traces.tokens))
    answer[-1] = traces.greedy[-1]
    cost[-1] = traces.greedy_cost[-1]
    share[-1] = (answer[-1] >= 0).astype(float)
    if traces.greedy_tokens is not None:
        tokens[-1] = traces.greedy_tokens[-1]
    runner = None if traces.runner_up is None else traces.runner_up.copy()
    if runner is not None:
        runner[-1] = 0.0
    return replace(traces, answer=answer, share=share, cost=cost, tokens=tokens, runner_up=runner, last_greedy=True)
