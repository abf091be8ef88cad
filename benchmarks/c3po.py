"""Benchmark C3PO on the task world's v2 ladder (cheapest -> dearest) against its baselines, side by side.

    python benchmarks/c3po.py [--n 400] [--k 5] [--budgets ...] [--alpha 0.1] [--splits 200] [--stated ...] [--quick]

Budgets default to five between the cheapest model's and the full cascade's typical cost
(`c3po.bench.default_budgets`); the stated budget defaults to the middle one. The strongest baseline on
this ladder is one greedy answer of the most powerful model: C3PO's points at 20 budgets are compared
with it on the same test queries (`c3po.lens.versus_greedy`), and the price lens re-prices the same
traces at price ratios (dearest / cheapest model) from 1x to 10,000x to find where C3PO starts to pay.

Traces (K seeded samples at temperature 0.7 per model and problem, test split) are computed once and
cached (`nblib.c3po.task_traces`). Budgets are MFLOPs per query (realised analytic FLOPs of every
visited model's K samples). For every budget and the same random D_ss (50) / D_cal (50) / test splits:
accuracy, mean cost and P(cost > B) of C3PO (paper's "reuse" mode and the strict "split" mode), the
labelled FrugalGPT-style cascade at matched mean cost, each single model (greedy and SC@K),
self-consistency on the large model and a fixed vote cascade. Then the guarantee sweep (budgets x
alphas, both modes). The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nblib import c3po, cost, taskworld  # noqa: E402

ALPHAS = (0.05, 0.1, 0.2, 0.3)


def main() -> None:
    """Traces once, then every method at every budget; a table, the guarantee sweep, one JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400, help="test-split problems")
    ap.add_argument("--k", type=int, default=5, help="samples per model and problem")
    ap.add_argument("--budgets", type=float, nargs="+", default=None, help="MFLOPs (default: from the traces)")
    ap.add_argument("--alpha", type=float, default=0.1)
    ap.add_argument("--splits", type=int, default=200)
    ap.add_argument("--stated", type=float, default=None, help="the budget (MFLOPs) the JSON reports")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="120 problems, 200 splits (CI)")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    n = 120 if a.quick else a.n
    t0 = time.perf_counter()
    print(f"load average before: {c3po.bench.loadavg()}")
    tr = c3po.task_traces(taskworld.LADDER, "test", n, a.k, verbose=True)
    t_traces = time.perf_counter() - t0
    default = [round(b / 1e6) for b in c3po.bench.default_budgets(tr, 5)]
    budgets_m = a.budgets if a.budgets is not None else default
    stated = a.stated if a.stated is not None else budgets_m[len(budgets_m) // 2]
    budgets = sorted(set(budgets_m) | {stated})
    ev = c3po.evaluate(tr)
    rows = c3po.bench.compare(tr, [b * 1e6 for b in budgets], a.alpha, n_splits=a.splits, ev=ev)
    df = c3po.bench.table(rows)
    import pandas as pd

    mpm = tr.models[-1]
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_rows", 200):
        print(f"\n{n} problems, K = {a.k}, temperature {tr.temperature}; alpha = {a.alpha}; {a.splits} random "
              f"D_ss (50) / D_cal (50) / test splits; cost = MFLOPs per query; ladder {tr.models}")
        print(df.to_string(index=False, float_format=lambda x: f"{x:,.3f}"))
    sweep = []
    for mode in c3po.cascade.MODES:
        sweep += c3po.guarantee.sweep(ev, [b * 1e6 for b in budgets], ALPHAS, n_splits=a.splits, mode=mode)
    sw = pd.DataFrame(sweep)
    sw["budget"] = sw["budget"] / 1e6
    print("\nguarantee: P(test cost > B) vs alpha + slack (3 standard errors over the splits)")
    print(sw[["mode", "budget", "alpha", "violation", "bound", "excess", "infeasible"]].to_string(
        index=False, float_format=lambda x: f"{x:.4f}"))
    ratios = [1, 3, 10, 30, 100, 300, 1000, 3000, 10000]
    base = c3po.lens.ladder_sheet(tr)
    own = base.ratio(tr.models[0], mpm)
    variants = {"paper": tr, "greedy_mpm": c3po.lens.greedy_last(tr)}   # K samples on every rung / MPM answers once
    lens = {}
    for key, t in variants.items():
        vs = c3po.lens.versus_greedy(t, a.alpha, n_splits=a.splits)
        curve = c3po.lens.break_even(t, sorted(set(ratios) | {round(own, 1)}), base, a.alpha, n_splits=a.splits)
        lens[key] = {"rows": vs, "best": c3po.lens.best_point(vs), "curve": curve,
                     "paying": c3po.lens.first_paying_ratio(curve)}
        label = "C3PO (paper: K samples on every rung)" if key == "paper" else "C3PO with a greedy MPM (adaptation)"
        print(f"\n{label} vs one greedy answer of {mpm} (same test queries; measured FLOPs):")
        print(pd.DataFrame(vs)[["budget_x_greedy", "c3po_accuracy", "greedy_accuracy", "accuracy_diff", "cost_ratio",
                                "beats_greedy"]].to_string(index=False, float_format=lambda x: f"{x:.3f}"))
        print(f"price lens: {mpm} / {tr.models[0]} price ratio -> the best point vs greedy {mpm} "
              f"(this ladder's own FLOPs ratio: {own:.1f}x)")
        print(pd.DataFrame(curve).to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    best, paying, curve = lens["paper"]["best"], lens["paper"]["paying"], lens["paper"]["curve"]
    at = {r["method"]: r for r in rows if r["budget"] == stated * 1e6}
    c3, fr = at["C3PO (reuse)"], at["FrugalGPT-style (labels, matched mean cost)"]
    large = at[f"{mpm} self-consistency@{a.k}"]
    greedy = at[f"{mpm} (greedy, 1 sample)"]
    singles_below = [r["accuracy"] for m, r in at.items() if r["kind"] in ("single", "sc") and not m.startswith(mpm)]
    strongest = max((r for r in at.values() if r["kind"] in ("single", "sc", "fixed", "frugal")),
                    key=lambda r: (r["accuracy"], -r["mean_cost"]))
    out = {
        "benchmark": "c3po", "problems": n, "k": a.k, "temperature": tr.temperature, "alpha": a.alpha,
        "ladder": tr.models, "splits": a.splits, "cost_unit": "MFLOPs per query", "budgets": budgets,
        "stated_budget": stated,
        "max_violation_minus_bound": round(float(sw[sw["mode"] == "reuse"]["excess"].max()), 4),
        "max_violation_minus_bound_split": round(float(sw[sw["mode"] == "split"]["excess"].max()), 4),
        "c3po_accuracy": round(c3["accuracy"], 4), "c3po_mean_cost": round(c3["mean_cost"] / 1e6, 2),
        "c3po_p_cost_over_budget": round(c3["p_cost_over_budget"], 4),
        "c3po_split_accuracy": round(at["C3PO (split)"]["accuracy"], 4),
        "frugalgpt_accuracy": round(fr["accuracy"], 4),
        "large_only_accuracy": round(large["accuracy"], 4), "large_only_cost": round(large["mean_cost"] / 1e6, 2),
        "large_greedy_accuracy": round(greedy["accuracy"], 4),
        "large_greedy_cost": round(greedy["mean_cost"] / 1e6, 2),
        "strongest_baseline_at_stated": {"method": strongest["method"], "accuracy": round(strongest["accuracy"], 4),
                                         "mean_cost": round(strongest["mean_cost"] / 1e6, 2)},
        "c3po_best_vs_greedy_large": None if best is None else {
            "accuracy_diff": round(best["accuracy_diff"], 4), "cost_ratio": round(best["cost_ratio"], 3),
            "budget_x_greedy": round(best["budget_x_greedy"], 3), "beats_greedy": best["beats_greedy"]},
        "goal_beats_greedy_large": bool(best is not None and best["beats_greedy"]),
        "goal_beats_greedy_large_greedy_mpm": bool(lens["greedy_mpm"]["best"] is not None
                                                   and lens["greedy_mpm"]["best"]["beats_greedy"]),
        "c3po_greedy_mpm_best_vs_greedy_large": None if lens["greedy_mpm"]["best"] is None else {
            k: (round(v, 4) if isinstance(v, float) else v) for k, v in lens["greedy_mpm"]["best"].items()
            if k in ("accuracy_diff", "cost_ratio", "budget_x_greedy", "beats_greedy")},
        "break_even_price_ratio_greedy_mpm": lens["greedy_mpm"]["paying"],
        "ladder_price_ratio": round(own, 1),
        "break_even_price_ratio": paying,
        "break_even_curve": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in curve],
        "goal_within_2_points_of_frugalgpt": bool(c3["accuracy"] >= fr["accuracy"] - 0.02),
        "goal_above_smaller_single_models": bool(c3["accuracy"] > max(singles_below)),
        "goal_cost_share_of_large": round(c3["mean_cost"] / large["mean_cost"], 3),
        "goal_violation_within_bound": bool(sw["excess"].max() <= 0),
        "traces_s": round(t_traces, 1), "total_s": round(time.perf_counter() - t0, 1),
        "loadavg_after": c3po.bench.loadavg(), "cpu_count": os.cpu_count(), "cpu": cost.cpu_model(),
        "blas": cost.blas_name(),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
