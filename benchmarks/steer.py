"""Benchmark STEER on the task world: accuracy and FLOPs of every method along its frontier, plus wall time.

    python benchmarks/steer.py [--test 200] [--long-steps 8] [--long-test 100] [--thresholds 25] [--quick]

Methods, side by side in one run on the same test problems: small-only (tiny), large-only, mid alone, STEER
(tiny + large) over a grid of thresholds, STEER with mid as the small model, query-level routing (the whole
problem to one model, decided by the small model's confidence on its first step) and random step routing at
STEER's large-step shares. Then the same on problems longer than the models were trained on (8 steps; they
saw 1-6). FLOPs are analytic per problem (nblib.cost.transformer_flops), prefill counted. Wall time: interleaved
repeats of small-only, large-only and STEER at its within-1-point threshold, median and spread, with the load
average. The last line is one JSON object.
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

from nblib import quick, steer  # noqa: E402
from nblib import taskworld as tw  # noqa: E402
from nblib.cost import time_fn  # noqa: E402


def frontier_table(fr) -> str:
    """Each method's points at a few large-step shares, as text."""
    big = steer.bench.large_point(fr)
    rows = []
    for m in dict.fromkeys(fr.points.method):
        pts = steer.bench.method_points(fr, m)
        take = sorted(set([0, len(pts) - 1] + [int(k) for k in (len(pts) * 0.25, len(pts) * 0.5, len(pts) * 0.75)]))
        for k in take:
            if k >= len(pts):
                continue
            p = pts.iloc[k]
            rows.append(f"{m:24s} τ={p.threshold:<10.4g} share L {p.large_share:5.2f}  acc {p.accuracy:.3f}  "
                        f"FLOPs/large {p.flops / big['flops']:.3f}  (large read {p.large_prefill / big['flops']:.3f}, "
                        f"large write {p.large_decode / big['flops']:.3f})")
    return "\n".join(rows)


def main() -> None:
    """Measure both frontiers and the wall times; print tables, then one JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--test", type=int, default=200)
    ap.add_argument("--long-steps", type=int, default=8)
    ap.add_argument("--long-test", type=int, default=100)
    ap.add_argument("--thresholds", type=int, default=25)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="40 problems, 9 thresholds (CI)")
    a = ap.parse_args()
    if a.quick or quick():
        a.test, a.thresholds, a.long_test = 40, 9, 30
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    print(f"load average before: {os.getloadavg()} (2 cores shared: wall times are indicative)")
    cfg = steer.FrontierConfig(n_test=a.test, n_calib=a.test, n_thresholds=a.thresholds)
    fr = steer.frontier(cfg)
    cfg_long = steer.FrontierConfig(n_test=a.long_test, n_calib=a.long_test, n_thresholds=a.thresholds,
                                    n_steps=a.long_steps, mid=None)
    fr_long = steer.frontier(cfg_long)
    for name, f in (("test split (1-6 steps)", fr), (f"longer problems ({a.long_steps} steps)", fr_long)):
        print(f"\n== {name}: {f.config.n_test} problems; params {f.params}; compute wall {f.wall_s}")
        print(frontier_table(f))
        s = steer.summary(f)
        print("summary:", s)
    # wall time: interleaved repeats (small-only, large-only, STEER at its within-1-point threshold)
    s = steer.summary(fr)
    router = steer.bench.steer_router(tw.load_model(cfg.small), tw.load_model(cfg.large), cfg)
    prompts = [tw.prompt_of(p) for p in tw.problems.problems("test", min(a.test, 64), cfg.seed)]
    dec = steer.ConfidenceDecider(fr.calibrator)
    tau = s["steer_threshold_at_large_minus_1pt"]
    fns = {"small-only": lambda: router.run(prompts, [0.0], dec), "large-only": lambda: router.run(prompts, [1.0], dec),
           f"STEER τ={tau:.4g}": lambda: router.run(prompts, [tau], dec)}
    samples = {k: [] for k in fns}
    for _ in range(3):
        for k, fn in fns.items():
            samples[k].append(time_fn(fn, warmup=0, repeats=1).median_ms)
    print(f"\nwall time for {len(prompts)} problems (batched), 3 interleaved repeats, load {os.getloadavg()}:")
    walls = {}
    for k, v in samples.items():
        v = sorted(v)
        walls[k] = v[1]
        print(f"  {k:20s} median {v[1] / 1e3:.2f} s (min {v[0] / 1e3:.2f}, max {v[-1] / 1e3:.2f})")
    sl = steer.summary(fr_long)
    out = {**s, "long_steps": a.long_steps,
           **{f"long_{k}": v for k, v in sl.items() if k in ("large_accuracy", "small_accuracy",
                                                              "steer_accuracy_at_best",
                                                              "steer_flops_saved_at_large_minus_1pt",
                                                              "query_routing_flops_saved_at_large_minus_1pt",
                                                              "random_flops_saved_at_large_minus_1pt",
                                                              "large_steps_share_at_that_threshold")},
           "wall_s_small_only": round(walls["small-only"] / 1e3, 3), "wall_s_large_only": round(walls["large-only"] / 1e3, 3),
           "wall_s_steer_at_that_threshold": round(walls[f"STEER τ={tau:.4g}"] / 1e3, 3),
           "n_test": a.test, "n_test_long": a.long_test, "n_thresholds": a.thresholds, "loadavg": [round(x, 2) for x in os.getloadavg()],
           "total_s": round(time.perf_counter() - t0, 1)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
