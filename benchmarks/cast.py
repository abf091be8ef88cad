"""Benchmark speculative decoding on the embedded SmolLM2 with the shipped draft: plain greedy, transformers'
assisted generation, a fixed chain, an EAGLE-2-style fixed-budget tree and CAST, at batch 1 and 4.

    python benchmarks/cast.py [--prompts 8] [--new-tokens 64] [--batches 1 4] [--threads 2] [--quick]

Held-out prompts: MT-Bench questions and HumanEval functions (data/cast/eval_prompts.jsonl). Everything is
measured in this one run; every method's output is checked token for token against plain greedy decoding.
Wall-clock speedups depend on how loaded the machine is: the load average is printed. The last line is one
JSON object with the speedups over plain decoding.
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

from nblib import cast  # noqa: E402


def main() -> None:
    """Run every method at every batch size; print a table, then one JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="small profile grid (CI)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    target, tok, draft = cast.bench.load_pair()
    rows_p = cast.bench.eval_prompts(a.prompts)
    prompts = [cast.bench.chat_ids(tok, r["prompt"]) for r in rows_p]
    print(f"prompts: {a.prompts} held out ({', '.join(sorted({r['source'] for r in rows_p}))}), "
          f"{sum(map(len, prompts)) / len(prompts):.0f} tokens on average; up to {a.new_tokens} new tokens each")
    print(f"load average before: {os.getloadavg()}  (2 cores shared with other jobs distort wall-clock speedups)")
    rows, env = cast.bench.compare(target, draft, tok, prompts, tuple(a.batches), a.new_tokens, a.quick)
    df = cast.bench.table(rows)
    with __import__("pandas").option_context("display.width", 160, "display.max_columns", 20):
        print(df.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(f"device: {env['device']}; torch threads {env['threads']}; load average before {env['loadavg_before']}, "
          f"after {env['loadavg_after']}; total {time.perf_counter() - t0:.0f} s")
    out = {"benchmark": "cast", "loadavg_before": env["loadavg_before"], "loadavg_after": env["loadavg_after"],
           "threads": env["threads"], "prompts": a.prompts, "new_tokens": a.new_tokens,
           "all_lossless": all(r.get("lossless", True) for r in rows),
           "speedup_over_plain": {f"b{r['batch']}": {} for r in rows},
           "accepted_per_call": {f"b{r['batch']}": {} for r in rows},
           "tokens_per_s": {f"b{r['batch']}": {} for r in rows}}
    for r in rows:
        if "speedup" in r:
            out["speedup_over_plain"][f"b{r['batch']}"][r["method"]] = round(r["speedup"], 3)
            out["accepted_per_call"][f"b{r['batch']}"][r["method"]] = round(r["accepted_per_call"], 3)
            out["tokens_per_s"][f"b{r['batch']}"][r["method"]] = round(r["tokens_per_s"], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
