"""Benchmark STEER on the task world v2 ladder: the share of large-only's cost each method saves, three accountings.

    python benchmarks/steer.py [--test 400] [--calib 200] [--thresholds 25] [--remeasure] [--quick]

At the defaults the routed runs are the shipped frontier (data/steer/frontier_v2.json.gz: accuracy, tokens and
FLOPs do not depend on the machine); --remeasure routes them again here (about 15 minutes on one thread). The CPU
latency profile is always measured again on this machine, with the load average printed beside it.

Methods, side by side in one run on the same test problems of the v2 mix (nblib.taskworld.problems.V2_MIX):
small-only (v2-tiny), large-only (v2-large), v2-mid alone, STEER (v2-tiny + v2-large) over a grid of
thresholds, STEER with v2-mid as the small model, query-level routing, random step routing at STEER's
large-step shares, and the per-query mix of small-only and large-only (the straight line a router must beat).
Before that, the AUROC of each confidence read (the paper's first token; the first result digit; every result
digit; the whole-step draft) against step validity; STEER runs with the best.

Costs, from the same runs (one ledger per run, nothing re-run): generated-token FLOPs (each token charged to
its writer), FLOPs with reads (the large model pays to read hand-overs), latency on this CPU (a profile
measured for the task models, one thread, batch 1) and latency on an H100 (a roofline "as if" 1.5B / 7B / 32B,
modelled). The last line is one JSON object: `saved_at_large_minus_1pt` = {accounting: {steer, query, random}}
(the share of large-only's cost saved at each method's lowest threshold within 1 point of large-only's
accuracy), `large_step_share`, `confidence_auroc`, the CPU model and BLAS, the load average.
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
from nblib.cost import blas_name, cpu_model  # noqa: E402


def table(fr) -> str:
    """Each method's point within 1 point of large-only (or its best), under every accounting, as text."""
    lines = [f"{'method':26s} {'share L':>7s} {'acc':>6s}  " + "  ".join(f"{a:>17s}" for a in steer.ACCOUNTINGS)]
    for m in dict.fromkeys(fr.points.method):
        rows = [steer.bench.at_large_minus(fr, m, accounting=a) for a in steer.ACCOUNTINGS]
        r = rows[0]
        lines.append(f"{m:26s} {r['large_share']:7.2f} {r['accuracy']:6.3f}  "
                     + "  ".join(f"{x['rel']:8.3f}x ({'ok' if x['reached'] else 'no'})  " for x in rows))
    return "\n".join(lines)


def main() -> None:
    """Measure the frontier (cached), print the reads, the table and the profiles, then one JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--test", type=int, default=400)
    ap.add_argument("--calib", type=int, default=200)
    ap.add_argument("--thresholds", type=int, default=25)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--remeasure", action="store_true", help="route the default frontier again instead of loading it")
    ap.add_argument("--quick", action="store_true", help="60 problems, 9 thresholds (CI)")
    a = ap.parse_args()
    if a.quick or quick():
        a.test, a.calib, a.thresholds = 60, 60, 9
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    print(f"load average before: {os.getloadavg()} (2 cores shared: the CPU latency profile is indicative)")
    cfg = steer.FrontierConfig(n_test=a.test, n_calib=a.calib, n_thresholds=a.thresholds)
    fr = steer.bench.frontier_or_shipped(cfg, run_full=a.remeasure)
    names = [n for n in (cfg.small, cfg.mid, cfg.large) if n]
    fr.profiles["latency_cpu"] = steer.latency.measure_cpu({n: tw.load_model(n) for n in names}, threads=a.threads)
    print(f"\n{cfg.n_test} test problems of the v2 mix; params {fr.params}; compute wall {fr.wall_s}")
    print("\nconfidence reads (AUROC against step validity, small model's own solutions of validation problems):")
    print(fr.reads.to_string(index=False))
    print(f"\nlatency profiles: {[p.label for p in fr.profiles.values()]}")
    for name, p in fr.profiles.items():
        for m, sec in p.seconds.items():
            print(f"  {name:12s} {m:9s} " + " ".join(f"{k}:{s * 1e3:.3f}ms" for k, s in zip(p.chunks, sec, strict=True)))
    print("\ncost / large-only at each method's lowest threshold within 1 point of large-only ('no': never within):")
    print(table(fr))
    s = steer.summary(fr)
    print("\nwhy FLOPs with reads save less: the large model reads every token before its last hand-over "
          "(KV caches kept); generated-token FLOPs and the GPU latency charge a hand-over about one decode step.")
    out = {**s, "n_test": a.test, "n_calib": a.calib, "n_thresholds": a.thresholds,
           "cpu": cpu_model(), "blas": blas_name(), "threads": a.threads,
           "latency_profiles": {k: p.label for k, p in fr.profiles.items()},
           "loadavg": [round(x, 2) for x in os.getloadavg()], "total_s": round(time.perf_counter() - t0, 1)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
