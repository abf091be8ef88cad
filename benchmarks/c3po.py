"""Benchmark C3PO on the task world's ladder (tiny -> mid -> large) against its baselines, side by side.

    python benchmarks/c3po.py [--n 400] [--k 5] [--budgets 150 600 1000 1500 2000] [--alpha 0.1] [--splits 200]
                              [--stated 1000] [--quick]

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

from nblib import c3po  # noqa: E402

ALPHAS = (0.05, 0.1, 0.2, 0.3)


def main() -> None:
    """Traces once, then every method at every budget; a table, the guarantee sweep, one JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400, help="test-split problems")
    ap.add_argument("--k", type=int, default=5, help="samples per model and problem")
    ap.add_argument("--budgets", type=float, nargs="+", default=[150, 600, 1000, 1500, 2000], help="MFLOPs")
    ap.add_argument("--alpha", type=float, default=0.1)
    ap.add_argument("--splits", type=int, default=200)
    ap.add_argument("--stated", type=float, default=1000, help="the budget (MFLOPs) the JSON reports")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="120 problems, 200 splits (CI)")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    n = 120 if a.quick else a.n
    t0 = time.perf_counter()
    print(f"load average before: {c3po.bench.loadavg()}")
    tr = c3po.task_traces(("tiny", "mid", "large"), "test", n, a.k, verbose=True)
    t_traces = time.perf_counter() - t0
    budgets = sorted(set(a.budgets) | {a.stated})
    ev = c3po.evaluate(tr)
    rows = c3po.bench.compare(tr, [b * 1e6 for b in budgets], a.alpha, n_splits=a.splits, ev=ev)
    df = c3po.bench.table(rows)
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_rows", 200):
        print(f"\n{n} problems, K = {a.k}, temperature {tr.temperature}; alpha = {a.alpha}; {a.splits} random "
              "D_ss (50) / D_cal (50) / test splits; cost = MFLOPs per query")
        print(df.to_string(index=False, float_format=lambda x: f"{x:,.3f}"))
    sweep = []
    for mode in c3po.cascade.MODES:
        sweep += c3po.guarantee.sweep(ev, [b * 1e6 for b in budgets], ALPHAS, n_splits=a.splits, mode=mode)
    sw = pd.DataFrame(sweep)
    sw["budget"] = sw["budget"] / 1e6
    print("\nguarantee: P(test cost > B) vs alpha + slack (3 standard errors over the splits)")
    print(sw[["mode", "budget", "alpha", "violation", "bound", "excess", "infeasible"]].to_string(
        index=False, float_format=lambda x: f"{x:.4f}"))
    at = {r["method"]: r for r in rows if r["budget"] == a.stated * 1e6}
    c3, fr = at["C3PO (reuse)"], at["FrugalGPT-style (labels, matched mean cost)"]
    large = at[f"large self-consistency@{a.k}"]
    singles_below = [r["accuracy"] for m, r in at.items() if r["kind"] in ("single", "sc") and not m.startswith("large")]
    out = {
        "benchmark": "c3po", "problems": n, "k": a.k, "temperature": tr.temperature, "alpha": a.alpha,
        "splits": a.splits, "cost_unit": "MFLOPs per query", "stated_budget": a.stated,
        "max_violation_minus_bound": round(float(sw[sw["mode"] == "reuse"]["excess"].max()), 4),
        "max_violation_minus_bound_split": round(float(sw[sw["mode"] == "split"]["excess"].max()), 4),
        "c3po_accuracy": round(c3["accuracy"], 4), "c3po_mean_cost": round(c3["mean_cost"] / 1e6, 2),
        "c3po_p_cost_over_budget": round(c3["p_cost_over_budget"], 4),
        "c3po_split_accuracy": round(at["C3PO (split)"]["accuracy"], 4),
        "frugalgpt_accuracy": round(fr["accuracy"], 4),
        "large_only_accuracy": round(large["accuracy"], 4), "large_only_cost": round(large["mean_cost"] / 1e6, 2),
        "large_greedy_accuracy": round(at["large (greedy, 1 sample)"]["accuracy"], 4),
        "large_greedy_cost": round(at["large (greedy, 1 sample)"]["mean_cost"] / 1e6, 2),
        "goal_within_2_points_of_frugalgpt": bool(c3["accuracy"] >= fr["accuracy"] - 0.02),
        "goal_above_smaller_single_models": bool(c3["accuracy"] > max(singles_below)),
        "goal_cost_share_of_large": round(c3["mean_cost"] / large["mean_cost"], 3),
        "goal_violation_within_bound": bool(sw["excess"].max() <= 0),
        "traces_s": round(t_traces, 1), "total_s": round(time.perf_counter() - t0, 1),
        "loadavg_after": c3po.bench.loadavg(), "cpu_count": os.cpu_count(),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
