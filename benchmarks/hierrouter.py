"""Benchmark HierRouter: the committed PPO routers (lambdas x seeds) and every baseline, side by side on held-out
problems of the task world v2 mix (2 to 8 steps).

    python benchmarks/hierrouter.py [--test-n 400] [--train-n 3000] [--quick] [--retrain TIMESTEPS]

Methods, all on the same step table (same model outputs, same FLOPs, the router's encoder charged to every
method that reads the context): each pool model alone (v2-tiny, v2-spec-sub, v2-spec-mul, v2-mid, v2-large),
the mixing line of tiny-only and large-only, random routing at the routers' cost, greedy by step kind, the best
fixed sequence and the logistic (non-RL) router chosen on the training split, the brute-force oracle, the
routers (3 seeds per lambda) and the hand-feature ablation; then the price lens re-prices the same episodes
"as if" the ladder were 0.5B / 7B / 70B models and at a provider's list prices. `--retrain N` trains fresh
routers for N timesteps here instead of loading the committed ones. The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nblib import hierrouter as H  # noqa: E402


def main() -> None:
    """Evaluate every router and baseline; print a table, then one JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--test-n", type=int, default=400)
    ap.add_argument("--train-n", type=int, default=3000)
    ap.add_argument("--lams", type=float, nargs="+", default=list(H.bench.DEFAULT_LAMS))
    ap.add_argument("--seeds", type=int, nargs="+", default=list(H.bench.SEEDS))
    ap.add_argument("--retrain", type=int, default=0, help="train fresh routers for this many timesteps")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="300 train / 100 test problems (CI)")
    a = ap.parse_args()
    if a.quick:
        a.test_n, a.train_n = 100, 300
    torch.set_num_threads(a.threads)
    t0, load0 = time.perf_counter(), os.getloadavg()
    train, ctr = H.step_table("train", a.train_n)
    test, cte = H.step_table("test", a.test_n)
    Atr, Ate = H.arrays(ctr, train), H.arrays(cte, test)
    unit = H.reference_cost(ctr, train)
    t_tables = time.perf_counter() - t0
    if a.retrain:
        feats = H.Features.fit(Atr.view[np.arange(Atr.horizon) < Atr.n_steps[:, None]])
        routers = {lam: [H.train(train, ctr, lam, a.retrain, s, cost_unit=unit, features=feats) for s in a.seeds]
                   for lam in a.lams}
    else:
        routers = H.bench.load_routers(a.lams, a.seeds)
    hand = H.Router.load(H.bench.policy_file(0.05, 0, tag="_hand"))
    ablations = {"ablation: hand kind features (lam 0.05)": (hand, H.arrays(cte.with_encoder(H.KindFeatures()), test))}
    rows, walks = H.bench.compare(routers, Atr, Ate, unit, ablations)
    df = H.bench.frame(rows)
    print(f"{a.test_n} held-out problems of 2-8 steps ({a.train_n} training problems for the fixed sequence, the "
          f"greedy picks and the logistic router); cost unit = large-only's mean episode, {unit / 1e6:.1f} MFLOPs")
    with __import__("pandas").option_context("display.width", 200, "display.max_columns", 20):
        print(df.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    s = H.bench.summary(rows)
    lens_walks = {f"{m} only": w for m, w in walks["singles"].items()}
    lens_walks |= {f"router lam {lam:g} (seed 0)": ws[0] for lam, ws in walks["routers"].items()}
    lens = {kind: {k: round(v, 4) for k, v in H.bench.price_lens(Ate, lens_walks, H.bench.pool_sheet(kind, Ate.names)
                                                               ).items()}
            for kind in ("as-if", "openai-2024-12")}
    walls = {f"{lam:g}": [r.config.get("train_wall_s") for r in rs] for lam, rs in routers.items()}
    print(f"router training wall s ({'this run' if a.retrain else 'committed runs, as recorded'}): {walls}; tables "
          f"{t_tables:.0f} s; load average before {load0}, after {os.getloadavg()} (2 shared cores)")
    out = {"benchmark": "hierrouter", **s, "price_lens_cost_share_of_large": lens,
           "cost_unit": f"{unit:.0f} FLOPs (mean large-only episode, training split)",
           "train_wall_s": walls, "test_problems": a.test_n, "train_problems": a.train_n,
           "cpu": H.bench.C.cpu_model(), "loadavg_before": load0, "loadavg_after": os.getloadavg(),
           "total_s": round(time.perf_counter() - t0, 1)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
