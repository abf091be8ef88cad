"""Every method side by side over the lambda sweep: the notebook and benchmarks/hierrouter.py share this.

`compare` evaluates the routers (several seeds per lambda) and every baseline on the same held-out arrays:
each pool model alone, random routing at the routers' cost, greedy by step kind, the best fixed sequence and
the logistic (non-RL) router chosen on the training problems, and the brute-force oracle. Costs are FLOPs per
episode (pool calls + the router's encoder where a method reads the context) and, in `cost`, shares of
`cost_unit` (large-only's mean episode FLOPs on the training problems). `summary` turns the rows into the
benchmark's JSON keys and the issue's goals; `price_lens` re-prices the same episodes with `nblib.cost`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .. import cost as C
from ..taskworld import models as tw
from . import baselines as B
from .agent import Router, run
from .episodes import Walk, usage
from .table import Arrays

DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "hierrouter"
DEFAULT_LAMS = (0.0, 0.01, 0.05, 0.1, 0.15, 0.5)
SEEDS = (0, 1, 2)
ORACLE_LAMS = (0.0, 0.01, 0.03, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 2.0, 5.0)
ROUTER = "HierRouter (PPO)"


def policy_file(lam: float, seed: int = 0, folder: Path | str = DATA_DIR, tag: str = "") -> Path:
    """Where the committed policy for (lambda, seed) lives: data/hierrouter/policy_lam<lam>_s<seed><tag>.safetensors."""
    return Path(folder) / f"policy_lam{lam:g}_s{seed}{tag}.safetensors"


def load_routers(lams: Sequence[float] = DEFAULT_LAMS, seeds: Sequence[int] = SEEDS, folder: Path | str = DATA_DIR,
                 tag: str = "") -> dict:
    """The committed routers, {lambda: [one per seed]} (each rebuilt with SB3's own loader from safetensors + JSON)."""
    return {float(lam): [Router.load(policy_file(lam, s, folder, tag)) for s in seeds] for lam in lams}


def pick_matrix(A: Arrays, w: Walk, max_hop: int | None = None) -> tuple[np.ndarray, list[str]]:
    """Share of episodes in which each model wrote the step, per (hop, kind): (models, columns) and the labels."""
    H = max_hop or A.horizon
    kinds = sorted({k for k in A.kinds.ravel() if k})
    cols = [(h, k) for h in range(H) for k in kinds]
    mat = np.full((len(A.names), len(cols)), np.nan)
    for j, (h, k) in enumerate(cols):
        sel = (A.kinds[:, h] == k) & (w.actions[:, h] >= 0)
        if sel.any():
            mat[:, j] = np.bincount(w.actions[sel, h], minlength=len(A.names)) / sel.sum()
    return mat, [f"hop {h + 1} {k}" for h, k in cols]


def compare(routers: Mapping[float, Sequence[Router]], train: Arrays, test: Arrays, cost_unit: float,
            ablations: Mapping[str, tuple[Router, Arrays]] | None = None, logistic: B.LogisticRouter | None = None) -> tuple[list[dict], dict]:
    """Rows for every router (each seed, and the seeds' mean) and every baseline on the test arrays; and the walks."""
    rows, singles_walks = B.single_models(test, cost_unit)
    rows = list(rows)
    walks: dict = {"singles": singles_walks, "routers": {}, "train_routers": {}, "oracle": {}}
    dear = len(test.names) - 1
    lr = logistic or B.LogisticRouter(next(iter(routers.values()))[0].features).fit(train)
    for lam in sorted(routers):
        ws, accs, costs = [], [], []
        for r in routers[lam]:
            w = run(r, test, cost_unit)
            ws.append(w)
            rows.append(B.point(ROUTER, w, cost_unit, lam, seed=r.config.get("seed"),
                                train_wall_s=r.config.get("train_wall_s")))
            accs.append(rows[-1]["accuracy"])
            costs.append(rows[-1]["cost"])
        walks["routers"][lam] = ws
        walks["train_routers"][lam] = [run(r, train, cost_unit) for r in routers[lam]]
        m_acc, m_cost = float(np.mean(accs)), float(np.mean(costs))
        rows.append({"method": f"{ROUTER}, mean of seeds", "lam": lam, "accuracy": m_acc, "cost": m_cost,
                     "cost_flops": m_cost * cost_unit, "return": m_acc - lam * m_cost,
                     "router_flops": float(np.mean([w.router_flops.mean() for w in ws])),
                     "spread": float(np.max(accs) - np.min(accs)), "cost_spread": float(np.max(costs) - np.min(costs)),
                     "seeds": len(accs),
                     "train_accuracy": float(np.mean([w.quality.mean() for w in walks["train_routers"][lam]]))})
        rows.append(B.random_at_cost(test, m_cost, cost_unit, dear) | {"lam": lam})
        rows.append(B.greedy_by_kind(train, test, cost_unit, lam))
        rows.append(B.best_fixed(train, test, cost_unit, lam))
        rows.append(B.logistic_router(lr, train, test, cost_unit, lam))
    for lam in ORACLE_LAMS:
        row, w = B.oracle(test, cost_unit, lam)
        rows.append(row)
        walks["oracle"][lam] = w
    for name, (r, arr) in (ablations or {}).items():
        w = run(r, arr, cost_unit)
        rows.append(B.point(name, w, cost_unit, r.lam, seed=r.config.get("seed")))
        walks[name] = w
    return rows, walks


def frame(rows: Sequence[dict]):
    """The rows as a table: method, lambda, accuracy, cost (x large-only), MFLOPs per episode, return."""
    import pandas as pd

    df = pd.DataFrame(rows)
    df["MFLOPs"] = df["cost_flops"] / 1e6
    cols = ["method", "lam", "accuracy", "cost", "MFLOPs", "return"] + [c for c in ("seed", "spread", "router_flops")
                                                                       if c in df]
    return df[cols]


def frontier(points: Sequence[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """(cost, accuracy) points sorted by cost, for interpolation."""
    pts = sorted(points)
    return np.array([c for c, _ in pts]), np.array([a for _, a in pts])


def area_between(upper: tuple[np.ndarray, np.ndarray], line, lo: float, hi: float, n: int = 2001) -> float:
    """Integral over cost in [lo, hi] of upper(cost) - line(cost) (upper interpolated linearly)."""
    if hi <= lo:
        return 0.0
    x = np.linspace(lo, hi, n)
    return float(np.trapezoid(np.interp(x, *upper) - line(x), x))


def summary(rows: Sequence[dict]) -> dict:
    """The benchmark's JSON keys, and whether the issue's goals were met."""
    by = lambda m: [r for r in rows if r["method"] == m]  # noqa: E731
    singles = {r["method"].replace(" only", ""): r for r in rows if r["method"].endswith(" only")}
    names = list(singles)
    tiny, large = singles[names[0]], singles[names[-1]]
    means = sorted(by(f"{ROUTER}, mean of seeds"), key=lambda r: r["lam"])
    pol = frontier([(r["cost"], r["accuracy"]) for r in means])
    line = lambda c: B.mixing_line(tiny, large, c)  # noqa: E731
    lo, hi = max(pol[0][0], tiny["cost"]), min(pol[0][-1], large["cost"])
    area = area_between(pol, line, lo, hi)
    logi = sorted(by("logistic router (non-RL)"), key=lambda r: r["lam"])
    area_logi = area_between(frontier([(r["cost"], r["accuracy"]) for r in logi]), line,
                             max(min(r["cost"] for r in logi), tiny["cost"]), min(max(r["cost"] for r in logi),
                                                                                  large["cost"]))
    rnd = {r["lam"]: r for r in rows if r["method"].startswith("random at matched cost")}
    logd = {r["lam"]: r for r in logi}
    orc = frontier([(r["cost"], r["accuracy"]) for r in by("oracle")])
    per_lam = []
    for r in means:
        mix = float(line(r["cost"]))
        per_lam.append({"lam": r["lam"], "accuracy": round(r["accuracy"], 4), "cost": round(r["cost"], 4),
                        "seed_spread": round(r["spread"], 4), "train_accuracy": round(r["train_accuracy"], 4),
                        "mixing_line": round(mix, 4), "random": round(rnd[r["lam"]]["accuracy"], 4),
                        "logistic_return": round(logd[r["lam"]]["return"], 4), "return": round(r["return"], 4),
                        "above_mixing_line": bool(r["accuracy"] - mix > r["spread"]),
                        "above_random": bool(r["accuracy"] - rnd[r["lam"]]["accuracy"] > r["spread"]),
                        "return_vs_logistic": round(r["return"] - logd[r["lam"]]["return"], 4)})
    near = [r for r in means if r["accuracy"] >= large["accuracy"] - 0.05]
    best_near = min(near, key=lambda r: r["cost"]) if near else None
    share = round(best_near["cost"] / large["cost"], 4) if best_near else None
    gap = round(float(np.interp(best_near["cost"], *orc)) - best_near["accuracy"], 4) if best_near else None
    # the paper's comparison: quality against an individual model that costs no more
    ratios = []
    for r in means:
        cheaper = [s for s in singles.values() if s["cost"] <= r["cost"] + 1e-12 and s["accuracy"] > 0]
        if cheaper:
            b = max(cheaper, key=lambda s: s["accuracy"])
            ratios.append((r["accuracy"] / b["accuracy"], r, b))
    best_ratio = max(ratios, key=lambda t: t[0]) if ratios else None
    spreads = [r["spread"] for r in means]
    # the objective every lambda-swept method optimises, averaged over the sweep: mean of quality - lam x cost
    lams = [r["lam"] for r in means]
    swept = {}
    for r in rows:
        if r["lam"] in lams and not r["method"].endswith(" only") and r["method"] != "oracle" \
                and not r["method"].startswith(("ablation", ROUTER)):
            name = "random at matched cost" if r["method"].startswith("random") else r["method"]
            swept.setdefault(name, {})[r["lam"]] = r["return"]
    mean_return = {k: float(np.mean(list(v.values()))) for k, v in swept.items() if len(v) == len(lams)}
    mean_return[ROUTER] = float(np.mean([r["return"] for r in means])) if means else float("nan")
    per_seed = {}
    for r in by(ROUTER):
        per_seed.setdefault(r.get("seed"), []).append(r["return"])
    seed_means = [np.mean(v) for v in per_seed.values() if len(v) == len(lams)]
    return {
        "mean_return_over_lams": {k: round(v, 4) for k, v in mean_return.items()},
        "mean_return_seed_spread": round(float(np.ptp(seed_means)), 4) if seed_means else None,
        "area_over_mixing_line": round(area, 5), "area_over_mixing_line_cost_range": [round(lo, 4), round(hi, 4)],
        "logistic_area_over_mixing_line": round(area_logi, 5),
        "best_within_5pts_of_large_cost_share": share,
        "best_within_5pts_of_large_accuracy": round(best_near["accuracy"], 4) if best_near else None,
        "best_within_5pts_of_large_lam": best_near["lam"] if best_near else None,
        "oracle_gap_at_that_cost": gap, "seeds": int(means[0]["seeds"]) if means else 0,
        "max_seed_spread": round(max(spreads), 4) if spreads else None,
        "per_lam": per_lam,
        "goal_above_mixing_line_every_lam": all(p["above_mixing_line"] for p in per_lam),
        "goal_above_random_every_lam": all(p["above_random"] for p in per_lam),
        "goal_within_5pts_of_large_at_half_cost": bool(share is not None and share <= 0.5),
        "goal_at_least_logistic": all(p["return_vs_logistic"] >= -m["spread"] for p, m in zip(per_lam, means)),
        "quality_ratio_vs_individual": round(best_ratio[0], 3) if best_ratio else None,
        "quality_ratio_vs": best_ratio[2]["method"] if best_ratio else None,
        "quality_ratio_lam": best_ratio[1]["lam"] if best_ratio else None,
        "large_only_accuracy": round(large["accuracy"], 4), "tiny_only_accuracy": round(tiny["accuracy"], 4),
        "tiny_only_cost": round(tiny["cost"], 4), "oracle_lam0_accuracy": round(by("oracle")[0]["accuracy"], 4),
        "oracle_lam0_cost": round(by("oracle")[0]["cost"], 4),
        "baselines": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()
                       if k in ("method", "lam", "accuracy", "cost", "return")}
                      for r in rows if not r["method"].startswith(ROUTER)],
    }


def pool_sheet(kind: str, names: Sequence[str]) -> C.PriceSheet:
    """A price sheet for the whole pool and the router: the ladder priced by `kind` ('as-if' or a provider table),
    every model of tiny's size (the specialists, the router's encoder) at tiny's price."""
    ladder = list(tw.LADDER)
    base = C.as_if_sheet(ladder) if kind == "as-if" else C.provider_sheet(ladder, kind)
    tiny = base.price(ladder[0])
    extra = [m for m in list(names) + ["router"] if m not in ladder]
    ins = tuple(base.input) + tuple((m, tiny[0]) for m in extra)
    outs = tuple(base.output) + tuple((m, tiny[1]) for m in extra)
    return C.PriceSheet(base.name + " (specialists and router at tiny's price)", base.unit, ins, outs, base.source)


def price_lens(A: Arrays, walks: Mapping[str, Walk], sheet: C.PriceSheet) -> dict[str, float]:
    """Each method's mean cost under the sheet, as a share of large-only's under the same sheet (`cost.reprice`)."""
    large = A.names[-1]
    ref = C.reprice(usage(A, walks[f"{large} only"]), sheet)["total"]
    return {name: C.reprice(usage(A, w, "router"), sheet)["total"] / ref for name, w in walks.items()}


def save_results(rows: Sequence[dict], path: Path | str, extra: dict | None = None) -> Path:
    """Write the rows and the summary to JSON (what the notebook shows as the committed run)."""
    clean = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in r.items()} for r in rows]
    out = {"summary": summary(rows), "rows": clean, **(extra or {})}
    Path(path).write_text(json.dumps(out, indent=1, default=float) + "\n")
    return Path(path)
