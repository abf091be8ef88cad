"""Print the task world's measured table from the committed checkpoints (nothing is trained).

Usage: python scripts/taskworld_report.py [--n 400] [--seed 0] [--json out.json]
Columns: params, training wall time, held-out final-answer accuracy (test split,
overall and by number of steps), BIG-bench subset accuracy, the tiny model's
step-confidence AUROC, the specialist step-accuracy matrix, and analytic vs
measured FLOPs per generated token.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from nblib import taskworld  # noqa: E402
from nblib.zoo import n_params  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=400, help="held-out test problems")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    held = taskworld.problems.problems("test", args.n, seed=args.seed)
    bb = taskworld.load_bigbench()
    names = list(taskworld.LADDER) + list(taskworld.SPECIALISTS.values())
    rows, by_steps, bb_rows, out = [], {}, {}, {}
    for name in names:
        model = taskworld.load_model(name)
        info = taskworld.model_info(name)
        traces = taskworld.traces.trace_problems(model, held)
        analytic, measured = taskworld.flops_per_token(model, past=40)
        row = {"model": name, "params": n_params(model), "train s": info["train_wall_s"],
               "train steps": info["spec"]["steps"], "held-out acc": np.mean([t.correct for t in traces]),
               "step AUROC": taskworld.step_auroc(traces), "FLOPs/tok analytic": analytic,
               "FLOPs/tok measured": measured, "mean FLOPs/problem": np.mean([t.flops for t in traces])}
        rows.append(row)
        by_steps[name] = taskworld.accuracy_by_steps(traces)
        bb_rows[name] = taskworld.external_accuracy(model, bb)
    table = pd.DataFrame(rows).set_index("model")
    steps = pd.DataFrame(by_steps).T
    steps.columns = [f"{c} steps" for c in steps.columns]
    bbt = pd.DataFrame(bb_rows).T
    bbt.columns = [c.replace("arithmetic/", "").replace("elementary_math_qa/question_with_mathematical_hint",
                                                         "math_qa hint") for c in bbt.columns]
    spec = taskworld.specialist_matrix(list(taskworld.SPECIALISTS.values()), held[:200])
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    print(f"held-out: {args.n} test-split problems (seed {args.seed}), greedy, KV cache\n")
    print(table.to_string(float_format=lambda v: f"{v:.3f}" if abs(v) < 10 else f"{v:,.0f}"))
    print("\nheld-out final-answer accuracy by number of steps")
    print(steps.to_string(float_format="{:.3f}".format))
    counts = pd.Series([it.task for it in bb]).value_counts()
    print(f"\nBIG-bench subset accuracy ({len(bb)} items; per task n = "
          + ", ".join(f"{k.split('/')[-1]}: {v}" for k, v in counts.items()) + ")")
    print(bbt.to_string(float_format="{:.3f}".format))
    print("\nspecialists: step accuracy given the gold steps before (200 held-out problems)")
    print(spec.to_string(float_format="{:.3f}".format))
    print(f"\n[report] {time.perf_counter() - t0:.0f} s")
    if args.json:
        out = {"table": table.reset_index().to_dict("records"), "by_steps": by_steps, "bigbench": bb_rows,
               "specialists": spec.to_dict()}
        args.json.write_text(json.dumps(out, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
