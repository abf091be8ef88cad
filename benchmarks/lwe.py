"""Benchmark LWE: Vanilla, a log-prob verdict, SSP, LWE and Selective LWE side by side on the same HHH stream.

    python benchmarks/lwe.py [--n 8] [--batch-size 4] [--model smollm2 | http://127.0.0.1:8000/v1] [--fresh]
    python benchmarks/lwe.py --shipped      # the committed runs in data/lwe/, no model calls

Every judge sees the same seeded stream of BIG-bench hhh_alignment pairs, one after the other, through one
response store (the user cache; `--fresh` keeps it in memory so every call is made now). It prints a table
(accuracy with a 95 % bootstrap interval, consistency in both senses, pair accuracy, calls per case against
the official formulas, tokens and model seconds per case), then one JSON line last with `calls_per_case` and
`accuracy` per method and `selective_over_lwe_calls`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from nblib import llm, lwe  # noqa: E402
from nblib.lwe import bench  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8, help="HHH pairs from the seeded stream")
    ap.add_argument("--batch-size", type=int, default=4, help="B: cases per meta-prompt update")
    ap.add_argument("--model", default="smollm2", help="a local model name/folder or an OpenAI-compatible URL")
    ap.add_argument("--fresh", action="store_true", help="make every call now (in-memory response store)")
    ap.add_argument("--shipped", action="store_true", help="report the committed runs (data/lwe/) instead")
    args = ap.parse_args()
    if args.n < 1 or args.batch_size < 1:
        ap.error("--n and --batch-size must be >= 1")
    t0 = time.perf_counter()
    if args.shipped:
        meta, records = bench.load_runs()
        source = f"shipped runs ({meta['command']}; {meta['machine']['date']})"
        n, model = meta["n"], meta["model"]
    else:
        lm = llm.connect(args.model)
        store = lwe.ResponseStore() if args.fresh else lwe.ResponseStore.default(lm.name)
        cases = lwe.stream(lwe.load("hhh"), n=args.n)
        records = bench.compare(lm, cases, cfg=lwe.JudgeConfig(batch_size=args.batch_size), store=store,
                                batch_sizes=(args.batch_size,), progress=False)
        source, n, model = "measured now" + ("" if args.fresh else " (calls already in the store reused)"), args.n, lm.name
    t = bench.table(records)
    cols = ["cases", "accuracy", "95% interval", "consistency", "parsed consistency", "pair accuracy", "said A",
            "calls / case", "formula", "score passes / case", "tokens / case", "model s / case", "acc − vanilla [95%]"]
    print(f"LWE judges on {n} BIG-bench hhh_alignment pairs, model {model}: {source}")
    print(t[[c for c in cols if c in t.columns]].to_string(float_format=lambda v: f"{v:,.3f}"))
    h = bench.headline(records, batch_size=args.batch_size)
    print(f"\nSelective LWE / LWE calls per case: {h.get('selective_over_lwe_calls')} (goal <= 0.60); "
          f"inconsistent share r = {h.get('inconsistent_share')}; Selective - Vanilla accuracy "
          f"{h.get('selective_minus_vanilla_accuracy')} (difference, 95 % interval)")
    print(f"wall {time.perf_counter() - t0:.0f} s (load average {os.getloadavg()[0]:.2f}); model seconds per case "
          "count a cached call at the time it took when it was made")
    out = {"benchmark": "lwe", "model": model, "n": n, "batch_size": args.batch_size, "source": source, **h,
           # the goal "never below vanilla by more than the interval": the paired interval reaches 0 or above
           "selective_not_below_vanilla": bool(h["selective_minus_vanilla_accuracy"][2] >= 0),
           "loadavg": round(os.getloadavg()[0], 2)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
