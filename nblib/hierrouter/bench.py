"""Every method side by side over the lambda sweep: the notebook and benchmarks/hierrouter.py share this.

`compare` evaluates the routers (one per lambda) and every baseline on the same held-out step table:
each pool model alone, random routing (uniform, and a family that picks the expensive model with a rising
probability), greedy by kind, the best fixed sequence chosen on the training split, and the brute-force
oracle. Costs are FLOPs per episode and, in `cost`, multiples of `cost_unit` (large-only's mean episode
FLOPs on the training split). `summary` turns the rows into the benchmark's JSON keys and the issue's goals.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..taskworld import problems as T
from . import baselines as B
from .agent import Router, evaluate
from .table import StepCache

DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "hierrouter"
DEFAULT_LAMS = (0.05, 0.15, 0.4, 1.0, 3.0)


def policy_file(lam: float, folder: Path | str = DATA_DIR, tag: str = "") -> Path:
    """Where the committed policy for this lambda lives: data/hierrouter/policy_lam<lam><tag>.safetensors."""
    return Path(folder) / f"policy_lam{lam:g}{tag}.safetensors"


def load_routers(lams: Sequence[float] = DEFAULT_LAMS, folder: Path | str = DATA_DIR, tag: str = "") -> dict:
    """The committed routers, by lambda (each rebuilt with SB3's own loader from safetensors + JSON)."""
    return {float(lam): Router.load(policy_file(lam, folder, tag)) for lam in lams}


def pick_matrix(df, names: Sequence[str], horizon: int) -> tuple[np.ndarray, list[str]]:
    """Share of episodes in which each model wrote the step, per (hop, kind): (models, hops x kinds), labels."""
    cols = [(h, k) for h in range(horizon) for k in T.OPS]
    mat = np.full((len(names), len(cols)), np.nan)
    for j, (h, k) in enumerate(cols):
        sel = [m[h] for m, ks in zip(df["models"], df["kinds"], strict=True) if ks[h] == k]
        if sel:
            for i, n in enumerate(names):
                mat[i, j] = sel.count(n) / len(sel)
    return mat, [f"hop {h + 1} {k}" for h, k in cols]


def policy_row(router: Router, df, cost_unit: float, name: str = "HierRouter (PPO)") -> dict:
    """The row of one evaluated router."""
    return B.point(name, df["quality"].to_numpy(), df["cost_flops"].to_numpy(), cost_unit, router.lam,
                   router_flops=float(df["router_flops"].mean()), train_wall_s=router.config.get("train_wall_s"))


def compare(routers: Mapping[float, Router], train: Sequence[T.Problem], train_cache: StepCache,
            test: Sequence[T.Problem], test_cache: StepCache, horizon: int = 3, cost_unit: float | None = None,
            ablations: Mapping[str, tuple[Router, StepCache]] | None = None) -> tuple[list[dict], dict]:
    """Rows for every router and baseline on the test problems, plus the routers' test evaluations by lambda."""
    from .env import reference_cost

    unit = cost_unit or reference_cost(train_cache, train, horizon)
    mtr = B.sequence_matrix(train_cache, train, horizon)
    mte = B.sequence_matrix(test_cache, test, horizon)
    expensive = max(test_cache.pool, key=lambda m: m.flops_per_token).name
    rows = B.single_models(mte, unit) + B.random_family(mte, unit, expensive)
    rows.append(B.greedy_by_kind(test_cache, train, test, unit))
    rows.append(B.greedy_by_kind(test_cache, train, test, unit, exclude=[expensive],
                                 name=f"greedy by kind, no {expensive}"))
    rows.append(B.oracle(mte, unit, 0.0) | {"method": "oracle (lam 0)"})
    evals = {}
    for lam, router in sorted(routers.items()):
        df = evaluate(router, test, test_cache, lam, horizon, unit)
        evals[lam] = df
        rows.append(policy_row(router, df, unit))
        rows.append(B.best_fixed(mtr, mte, unit, lam))
        rows.append(B.oracle(mte, unit, lam))
    for name, (router, cache) in (ablations or {}).items():
        df = evaluate(router, test, cache, router.lam, horizon, unit)
        rows.append(policy_row(router, df, unit, name=name))
    return rows, evals


def frame(rows: Sequence[dict]):
    """The rows as a table: method, lambda, accuracy, cost (x large-only), MFLOPs per episode, return."""
    import pandas as pd

    df = pd.DataFrame(rows)
    df["MFLOPs"] = df["cost_flops"] / 1e6
    cols = ["method", "lam", "accuracy", "cost", "MFLOPs", "return"] + [c for c in ("sequence", "router_flops")
                                                                       if c in df]
    return df[cols]


def dominates(points: Sequence[tuple[float, float]], others: Sequence[tuple[float, float]]) -> bool:
    """True when every (cost, accuracy) in `others` is matched by a point with cost <= and accuracy >=."""
    return all(any(c <= oc + 1e-12 and a >= oa - 1e-12 for c, a in points) for oc, oa in others)


def summary(rows: Sequence[dict]) -> dict:
    """The benchmark's JSON keys, and whether the issue's goals were met."""
    pol = [r for r in rows if r["method"] == "HierRouter (PPO)"]
    singles = [r for r in rows if r["method"].endswith(" only")]
    specs = [r for r in singles if r["method"].startswith("spec-")]
    best_spec = max(specs, key=lambda r: (r["accuracy"], -r["cost"])) if specs else max(singles,
                                                                                         key=lambda r: r["accuracy"])
    large = max(singles, key=lambda r: r["cost"])
    within = [r for r in pol if r["cost"] <= best_spec["cost"] + 1e-12]
    pick = max(within, key=lambda r: r["accuracy"]) if within else min(pol, key=lambda r: r["cost"])
    randoms = [(r["cost"], r["accuracy"]) for r in rows if r["method"].startswith("random")]
    near_large = [r for r in pol if r["accuracy"] >= large["accuracy"] - 0.05 and r["cost"] < 0.5 * large["cost"]]
    orc0 = next(r for r in rows if r["method"] == "oracle (lam 0)")
    ratio = pick["accuracy"] / best_spec["accuracy"] if best_spec["accuracy"] > 0 else float("inf")
    return {
        "policy_accuracy": round(pick["accuracy"], 4), "policy_cost": round(pick["cost"], 4),
        "policy_lam": pick["lam"], "policy_within_specialist_cost": bool(within),
        "best_single_specialist": best_spec["method"].replace(" only", ""),
        "best_single_specialist_accuracy": round(best_spec["accuracy"], 4),
        "best_single_specialist_cost": round(best_spec["cost"], 4),
        "large_only_accuracy": round(large["accuracy"], 4), "large_only_cost": round(large["cost"], 4),
        "oracle_accuracy": round(orc0["accuracy"], 4),
        "frontier_dominates_random": bool(dominates([(r["cost"], r["accuracy"]) for r in pol], randoms)),
        "accuracy_ratio_vs_specialist": round(ratio, 3),
        "goal_2x_specialist_at_its_cost": bool(within) and ratio >= 2.0,
        "goal_within_5pts_of_large_at_half_cost": bool(near_large),
        "sweep": [{"lam": r["lam"], "accuracy": round(r["accuracy"], 4), "cost": round(r["cost"], 4)} for r in pol],
        "cost_unit": "mean large-only FLOPs per episode on the training split",
    }


def save_results(rows: Sequence[dict], evals: Mapping[float, object], path: Path | str, extra: dict | None = None,
                 names: Sequence[str] = (), horizon: int = 3) -> Path:
    """Write the rows, the summary and each router's heat map to JSON (what the notebook can show offline)."""
    heat = {}
    for lam, df in evals.items():
        mat, labels = pick_matrix(df, names, horizon)
        heat[f"{lam:g}"] = {"matrix": np.where(np.isnan(mat), None, mat.round(4)).tolist(), "columns": labels}
    clean = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in r.items()} for r in rows]
    out = {"rows": clean, "summary": summary(rows), "heat": heat, "models": list(names), **(extra or {})}
    Path(path).write_text(json.dumps(out, indent=1, default=float) + "\n")
    return Path(path)
