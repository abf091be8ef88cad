"""The task world's v2 ladder and specialists: cost and quality per model, on 400 held-out test problems.

    python benchmarks/taskworld.py [--n 400] [--seed 0] [--threads 2]

For every model of `taskworld.LADDER` (cheapest first) and `taskworld.SPECIALISTS`: parameters, analytic
FLOPs per generated token (after 32 cached tokens), final-answer accuracy with a bootstrap interval, by
difficulty level, and per kind of step the share of the model's own written steps that are valid (and,
for the specialists, the share written exactly right given the gold steps before it). Then the ladder's
targets (issue 21), and one JSON line last.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nblib import cost, taskworld  # noqa: E402


def targets(rep: dict) -> dict:
    """The ladder's targets (issue 21) checked on a report: name -> bool."""
    tiny, mid, large = (rep[n] for n in taskworld.LADDER)
    specs = {op: rep[n] for op, n in taskworld.SPECIALISTS.items() if n in rep}
    kinds = tiny["step_validity_by_fine_kind"].values()  # + and - split by the operand's digits
    out = {
        "large_over_tiny_flops_ge_25": large["flops_per_token"] / tiny["flops_per_token"] >= 25,
        "large_over_mid_flops_ge_4": large["flops_per_token"] / mid["flops_per_token"] >= 4,
        "tiny_accuracy_0.35_0.60": 0.35 <= tiny["accuracy"] <= 0.60,
        "mid_accuracy_0.70_0.85": 0.70 <= mid["accuracy"] <= 0.85,
        "large_accuracy_0.88_0.96": 0.88 <= large["accuracy"] <= 0.96,
        "tiny_easiest_ge_0.85": tiny["accuracy_easiest"] >= 0.85,
        "tiny_a_step_kind_ge_0.90": max(kinds) >= 0.90,
        "tiny_a_step_kind_le_0.60": min(kinds) <= 0.60,
    }
    for op, s in specs.items():
        kind = taskworld.problems.KIND_NAMES[op]
        own = s["step_accuracy_by_kind"][kind] - tiny["step_accuracy_by_kind"][kind]
        others = [s["step_accuracy_by_kind"][k] < tiny["step_accuracy_by_kind"][k]
                  for k in s["step_accuracy_by_kind"] if k != kind]
        out[f"{taskworld.SPECIALISTS[op]}_flops_le_tiny"] = s["flops_per_token"] <= tiny["flops_per_token"]
        out[f"{taskworld.SPECIALISTS[op]}_own_kind_ge_tiny_plus_15pts"] = own >= 0.15
        out[f"{taskworld.SPECIALISTS[op]}_worse_than_tiny_on_others"] = all(others)
    return out


def main() -> None:
    """Measure every v2 model once (cached traces), print the table and targets, then one JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400, help="held-out test problems per model")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    load0 = tuple(round(x, 2) for x in os.getloadavg())
    t0 = time.perf_counter()
    names = list(taskworld.LADDER) + [n for n in taskworld.SPECIALISTS.values() if n in taskworld.available_models()]
    rep = taskworld.metrics.ladder_report(names, n=a.n, seed=a.seed)
    print(f"task world v2: {a.n} held-out test problems of the default mix (seed {a.seed}); load before {load0}\n")
    head = f"{'model':14s} {'params':>9s} {'kFLOPs/tok':>10s} {'accuracy [95% CI]':>22s} {'easy':>6s} {'medium':>6s} {'hard':>6s}   step validity add/sub/mul   gold-context add/sub/mul"
    print(head)
    for n, r in rep.items():
        lo, hi = r["accuracy_interval"]
        lv = r.get("accuracy_by_level", {})
        sv = " / ".join(f"{r['step_validity_by_kind'].get(k, float('nan')):.2f}" for k in ("add", "sub", "mul"))
        sa = " / ".join(f"{r['step_accuracy_by_kind'].get(k, float('nan')):.2f}" for k in ("add", "sub", "mul"))
        print(f"{n:14s} {r['params']:9,d} {r['flops_per_token'] / 1e3:10.1f} {r['accuracy']:8.3f} [{lo:.3f}, {hi:.3f}] "
              f"{lv.get('easy', float('nan')):6.3f} {lv.get('medium', float('nan')):6.3f} {lv.get('hard', float('nan')):6.3f}"
              f"   {sv:26s}  {sa}")
    ft = {n: rep[n]["flops_per_token"] for n in taskworld.LADDER}
    tiny, mid, large = taskworld.LADDER
    print(f"\nFLOPs per token: {large} / {tiny} = {ft[large] / ft[tiny]:.1f}x, {large} / {mid} = {ft[large] / ft[mid]:.2f}x")
    print("\nstep validity by finer kind (+ and - split by the operand's digits):")
    for n in taskworld.LADDER:
        print(f"  {n:10s} " + "  ".join(f"{k} {v:.2f}" for k, v in rep[n]["step_validity_by_fine_kind"].items()))
    tg = targets(rep)
    print("targets:", ", ".join(f"{k} {'ok' if v else 'MISSED'}" for k, v in tg.items()))
    out = {"benchmark": "taskworld", "problems": a.n, "seed": a.seed, "ladder": list(taskworld.LADDER),
           "specialists": [n for n in taskworld.SPECIALISTS.values() if n in rep],
           "models": {n: {"params": r["params"], "flops_per_token": r["flops_per_token"],
                          "accuracy": round(r["accuracy"], 4),
                          "accuracy_interval": [round(x, 4) for x in r["accuracy_interval"]],
                          "accuracy_easiest": round(r.get("accuracy_easiest", float("nan")), 4),
                          "accuracy_by_level": {k: round(v, 4) for k, v in r.get("accuracy_by_level", {}).items()},
                          "step_validity_by_kind": {k: round(v, 4) for k, v in r["step_validity_by_kind"].items()},
                          "step_validity_by_fine_kind": {k: round(v, 4) for k, v in
                                                         r["step_validity_by_fine_kind"].items()},
                          "step_accuracy_by_kind": {k: round(v, 4) for k, v in r["step_accuracy_by_kind"].items()}}
                      for n, r in rep.items()},
           "large_over_tiny_flops": round(ft[large] / ft[tiny], 2), "large_over_mid_flops": round(ft[large] / ft[mid], 2),
           "targets": tg, "all_targets_met": all(tg.values()),
           "cpu": cost.cpu_model(), "blas": cost.blas_name(), "torch_threads": a.threads,
           "loadavg_before": load0, "loadavg_after": tuple(round(x, 2) for x in os.getloadavg()),
           "total_s": round(time.perf_counter() - t0, 1)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
