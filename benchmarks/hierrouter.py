"""Benchmark HierRouter: the committed PPO routers (one per cost weight lambda) and every baseline, side by side
on held-out 3-step task-world problems.

    python benchmarks/hierrouter.py [--test-n 400] [--train-n 500] [--lams 0.05 0.15 0.4 1 3] [--quick]
                                    [--retrain TIMESTEPS]

Methods, all on the same step table (same model outputs, same FLOPs): each pool model alone (spec-add,
spec-sub, spec-mul, tiny, large), random routing (uniform, and a family that picks large with probability
p), greedy by kind (reads the next step's kind from the problem; with and without large), the best fixed
sequence chosen on the training split, the per-problem brute-force oracle over all 125 sequences, the
routers, and the hand-feature ablation. Cost = FLOPs per token x (tokens read + tokens written) per call,
shown as a multiple of large-only's mean episode FLOPs. `--retrain N` trains fresh routers for N timesteps
in this run instead of loading the committed ones (and reports the training wall time). The last line is
one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nblib import hierrouter as H  # noqa: E402


def main() -> None:
    """Evaluate every router and baseline; print a table, then one JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--test-n", type=int, default=400)
    ap.add_argument("--train-n", type=int, default=500)
    ap.add_argument("--lams", type=float, nargs="+", default=list(H.bench.DEFAULT_LAMS))
    ap.add_argument("--retrain", type=int, default=0, help="train fresh routers for this many timesteps")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="100 train / 100 test problems (CI)")
    a = ap.parse_args()
    if a.quick:
        a.test_n, a.train_n = 100, 100
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    load0 = os.getloadavg()
    train, ctr = H.step_table("train", a.train_n, 3)
    test, cte = H.step_table("test", a.test_n, 3)
    unit = H.reference_cost(ctr, train, 3)
    t_tables = time.perf_counter() - t0
    if a.retrain:
        routers = {lam: H.train(train, ctr, lam, 3, a.retrain, cost_unit=unit) for lam in a.lams}
    else:
        routers = H.bench.load_routers(a.lams)
    hand = H.bench.load_routers([0.4], tag="_hand")[0.4]
    ablations = {"ablation: hand kind features (lam 0.4)": (hand, H.StepCache(cte.pool, H.KindFeatures(), cte.steps))}
    rows, _ = H.bench.compare(routers, train, ctr, test, cte, 3, unit, ablations)
    df = H.bench.frame(rows)
    print(f"{a.test_n} held-out 3-step problems ({a.train_n} training problems for the fixed sequence and greedy "
          f"picks); cost unit = large-only's mean episode, {unit / 1e6:.1f} MFLOPs")
    with __import__("pandas").option_context("display.width", 180, "display.max_columns", 20):
        print(df.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    s = H.bench.summary(rows)
    walls = {f"{lam:g}": r.config.get("train_wall_s") for lam, r in routers.items()}
    print(f"router training wall s per lambda ({'this run' if a.retrain else 'committed runs, as recorded'}): "
          f"{walls}; tables {t_tables:.0f} s; load average before {load0}, after {os.getloadavg()} "
          f"(2 shared cores: wall times are under load)")
    out = {"benchmark": "hierrouter", **{k: v for k, v in s.items() if k != "cost_unit"},
           "cost_unit": f"{unit:.0f} FLOPs (mean large-only episode, training split)",
           "router_overhead_flops_per_episode": round(float(df.loc[df.method == "HierRouter (PPO)",
                                                                    "router_flops"].mean()), 1),
           "train_wall_s": walls, "test_problems": a.test_n, "loadavg_before": load0,
           "loadavg_after": os.getloadavg(), "total_s": round(time.perf_counter() - t0, 1)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
