"""Every method side by side at a few budgets, for notebook 06 and benchmarks/c3po.py (one run, same traces).

For each budget B (cost per query, the traces' unit) and the same S random D_ss / D_cal / test splits:

- C3PO ("reuse", the paper's code) and C3PO ("split", the strict variant): test accuracy, mean cost,
  the rate at which a test query's cost exceeds B (the guaranteed quantity) and its bound alpha + slack;
- FrugalGPT-style, fitted with labels on D_ss + D_cal, read off its test accuracy/cost frontier at
  C3PO's mean test cost on the same split (matched mean cost; between two frontier points the
  accuracy is interpolated, i.e. a random mix of the two cascades);
- each single model (greedy and SC@K), self-consistency on the MPM, and the fixed vote cascade on every query.
"""
from __future__ import annotations

import os

import numpy as np

from . import baselines as BL
from . import guarantee as G
from .cascade import Evaluated, Prepared, evaluate
from .traces import CascadeTraces


def frugal_frontiers(traces: CascadeTraces, ss, cal, test, n_fits: int) -> list[list[dict]]:
    """FrugalGPT fitted with labels on D_ss + D_cal of the first n_fits splits: each one's test frontier."""
    out = []
    for s in range(min(n_fits, len(ss))):
        train = np.concatenate([ss[s], cal[s]])
        out.append(BL.frugal_frontier(traces, train, test[s]))
    return out


def default_budgets(traces: CascadeTraces, n: int = 4) -> list[float]:
    """A few budgets between the cheapest model's and the full cascade's typical cost (rounded, increasing)."""
    lo = float(np.quantile(traces.cost[0], 0.9)) * 1.05
    hi = float(np.quantile(traces.cost.sum(0), 0.9))
    vals = np.geomspace(lo, hi, n)
    mag = 10 ** np.floor(np.log10(vals))
    return [float(np.round(v / m, 1) * m) for v, m in zip(vals, mag, strict=True)]


def compare(traces: CascadeTraces, budgets, alpha: float = 0.1, n_ss: int = 50, n_cal: int = 50,
            n_splits: int = 200, n_frugal: int = 40, seed: int = 0, fixed: float = 0.8,
            ev: Evaluated | None = None, z: float = 3.0) -> list[dict]:
    """Rows (budget, method): accuracy, mean cost, P(cost > B) on test queries, and C3PO's bound and infeasible share."""
    ev = ev if ev is not None else evaluate(traces)
    ss, cal, test = G.splits(traces.n_queries, n_ss, n_cal, n_splits, seed)
    fronts = frugal_frontiers(traces, ss, cal, test, n_frugal)
    fixed_rows = BL.single_models(traces) + [BL.fixed_vote(traces, fixed)]
    _, fixed_ans, fixed_cost = BL.run_configs(traces.share, traces.answer, traces.cost,
                                              np.array([[fixed] * (traces.n_models - 1) + [0.0]]))
    per_query = {r["method"]: None for r in fixed_rows}
    for m, name in enumerate(traces.models):
        if traces.greedy is not None:
            per_query[f"{name} (greedy, 1 sample)"] = traces.greedy_cost[m]
        per_query[f"{name} {'self-consistency' if m == traces.n_models - 1 else 'SC'}@{traces.k}"] = traces.cost[m]
    per_query[fixed_rows[-1]["method"]] = fixed_cost[0]
    pre = Prepared(ev, ss, cal)
    rows = []
    for b in budgets:
        runs = {mode: G.run_splits(ev, b, alpha, ss, cal, test, mode, pre) for mode in ("reuse", "split")}
        for mode, run in runs.items():
            ok = run.feasible
            rows.append({"budget": float(b), "method": f"C3PO ({mode})", "kind": f"c3po-{mode}",
                         "accuracy": _mean(run.accuracy[ok]), "mean_cost": _mean(run.mean_cost[ok]),
                         "p_cost_over_budget": run.violation, "bound": alpha + run.slack(z),
                         "infeasible": run.infeasible, "mpm_agreement": _mean(run.agreement[ok])})
        main = runs["reuse"]
        accs, costs = [], []
        for s, fr in enumerate(fronts):
            if main.feasible[s]:
                c = main.mean_cost[s]
                accs.append(BL.accuracy_at_cost(fr, c))
                costs.append(c)
        rows.append({"budget": float(b), "method": "FrugalGPT-style (labels, matched mean cost)",
                     "kind": "frugal", "accuracy": _mean(accs), "mean_cost": _mean(costs),
                     "p_cost_over_budget": float("nan"), "bound": float("nan"), "infeasible": float("nan")})
        for r in fixed_rows:
            rows.append({"budget": float(b), "method": r["method"], "kind": r["kind"], "accuracy": r["accuracy"],
                         "mean_cost": r["mean_cost"], "p_cost_over_budget": float((per_query[r["method"]] > b).mean()),
                         "bound": float("nan"), "infeasible": 0.0})
    return rows


def _mean(x) -> float:
    x = np.asarray(x, dtype=float)
    return float(np.nanmean(x)) if x.size and np.isfinite(x).any() else float("nan")


def table(rows: list[dict], unit_scale: float = 1e6, unit: str = "MFLOPs"):
    """The comparison as a DataFrame (cost in `unit`, accuracy in %), one block per budget."""
    import pandas as pd

    df = pd.DataFrame(rows)
    df["budget"] = df["budget"] / unit_scale
    df["mean_cost"] = df["mean_cost"] / unit_scale
    df = df.rename(columns={"budget": f"budget ({unit})", "mean_cost": f"mean cost ({unit})",
                            "p_cost_over_budget": "P(cost > B)", "bound": "alpha + slack"})
    df["accuracy"] = 100 * df["accuracy"]
    return df.drop(columns=[c for c in ("kind", "mpm_agreement") if c in df])


def loadavg() -> tuple[float, float, float]:
    """os.getloadavg(), rounded (printed beside every wall-clock figure)."""
    return tuple(round(x, 2) for x in os.getloadavg())
