"""Benchmark speculative decoding of the embedded SmolLM2 against transformers' `generate` greedy, in one run.

    python benchmarks/cast.py [--prompts 8] [--prompt-file FILE] [--new-tokens 64] [--batches 1 2 4 8] [--threads 2] [--quick]
                              [--sweep | --keep-sweep FILE] [--sampling] [--save data/cast/benchmark_cpu.json]

Methods: transformers' `generate` greedy (the baseline every speedup divides by), its assisted generation with
the token-level draft and its prompt-lookup decoding (both batch 1 only), this package's plain loop (with the
skinny verify kernel, and with torch's matmul: `over_plain` divides by the former, so it is speculation's own
gain), and chain /
EAGLE-2-style fixed tree / CAST with the feature-level (EAGLE) draft and with the token-level draft. Held-out
prompts: MT-Bench questions and HumanEval functions (data/cast/eval_prompts.jsonl); --prompt-file swaps in
others, e.g. the chat-only data/cast/chat_prompts.jsonl. Every method's output is
checked token for token against `generate` one prompt at a time. Also measured: each draft's top-1 agreement
with the target and the cost of verifying n tree tokens relative to one decode step. With --save, everything
(and, with --sweep, the fixed-tree sweep behind notebook 07's sliders) is written as JSON with the machine it was
measured on; notebook 07 shows that file on first open. The last line is one JSON object.
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
from nblib.cost import blas_name, cpu_model  # noqa: E402


def main() -> None:
    """Run every method at every batch size; print tables, then one JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="small profile grid (CI)")
    ap.add_argument("--sweep", action="store_true", help="also measure the fixed-tree sweep of notebook 07")
    ap.add_argument("--save", type=Path, default=None, help="write every measurement to this JSON file")
    ap.add_argument("--keep-sweep", type=Path, default=None,
                    help="carry the fixed-tree sweep over from this saved benchmark (labelled with its date) instead of "
                         "re-measuring it")
    ap.add_argument("--sampling", action="store_true",
                    help="also time speculative sampling at T = 0.7 against the plain sampled loop (batch 1)")
    ap.add_argument("--sampling-only", action="store_true", help="only the sampling measurement (minutes)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="paired rounds of CAST against the plain loop per batch size (their median is cast_over_plain; "
                         "0: one run each)")
    ap.add_argument("--prompt-file", type=Path, default=None,
                    help="JSON lines with a \"prompt\" per line instead of the held-out MT-Bench / HumanEval prompts, "
                         "e.g. data/cast/chat_prompts.jsonl (8 chat-only prompts no draft was trained on)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    target, tok, _ = cast.bench.load_pair()
    drafts = cast.bench.load_drafts(target)
    rows_p = (cast.bench.eval_prompts(a.prompts) if a.prompt_file is None
              else cast.bench.prompts_from(a.prompt_file, a.prompts))
    a.prompts = len(rows_p)
    prompts = [cast.bench.chat_ids(tok, r["prompt"]) for r in rows_p]
    if a.sampling_only:
        print(json.dumps({**sampling_section(target, drafts, prompts, a.new_tokens),
                          "prompts": a.prompts, "new_tokens": a.new_tokens, "threads": a.threads,
                          "cpu": cpu_model(), "blas": blas_name()}))
        return
    origin = "held out" if a.prompt_file is None else f"from {a.prompt_file}"
    print(f"prompts: {a.prompts} {origin} ({', '.join(sorted({r['source'] for r in rows_p}))}), "
          f"{sum(map(len, prompts)) / len(prompts):.0f} tokens on average; up to {a.new_tokens} new tokens each")
    print(f"load average before: {os.getloadavg()}  (wall-clock speedups need a quiet machine)")
    result = cast.bench.full_benchmark(target, drafts, tok, prompts, tuple(a.batches), a.new_tokens, a.quick,
                                       sweep=a.sweep, rounds=a.rounds)
    df = cast.bench.table(result["rows"])
    with __import__("pandas").option_context("display.width", 200, "display.max_columns", 20):
        print(df.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print("draft top-1 agreement with the target (on its own greedy continuations):",
          json.dumps(result["agreement"]))
    print(f"matmul: {result['env'].get('kernel')}")
    print("verify cost, n tree tokens / one decode step of the same path (lean + skinny kernel, lean + torch's "
          "matmul, transformers' forward, FLOPs):")
    for r in result["verify_cost"]:
        print(f"  n={r['n']:3d}  lean {r['lean_rel']:.2f}x ({1e3 * r['lean_s']:.0f} ms)  torch {r['torch_rel']:.2f}x "
              f"({1e3 * r['torch_s']:.0f} ms)  hf {r['hf_rel']:.2f}x ({1e3 * r['hf_s']:.0f} ms)  "
              f"flops {r['flops_rel']:.0f}x")
    env = result["env"]
    print(f"device: {env['device']}; torch threads {env['threads']}; load average before {env['loadavg_before']}, "
          f"after {env['loadavg_after']}; total {time.perf_counter() - t0:.0f} s")
    print("\nper batch size: CAST's choice and the strongest other method")
    print(cast.bench.per_batch(result).to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    for b, v in result.get("paired", {}).items():
        print(f"  paired rounds, batch {b}: CAST / plain {v['median']:.3f} (median; rounds "
              f"{', '.join(f'{x:.3f}' for x in v['over_plain'])}); outputs equal: {v['lossless']}")
    print("measured step overheads (ms) and kernel crossover per batch (feature draft's profiles):")
    for b, o in result.get("overheads", {}).items():
        print(f"  batch {b}: step {1e3 * o['step_s']:.1f}, level {1e3 * o['level_s']:.1f}, no-draft "
              f"{1e3 * o['nodraft_s']:.1f}; skinny kernel up to {o.get('kernel_rows')} rows")
    if a.keep_sweep is not None:
        old = cast.bench.load_benchmark(a.keep_sweep)
        if "sweep" in old:
            result["sweep"], result["sweep_grid"] = old["sweep"], old.get("sweep_grid")
            result["sweep_measured"] = old.get("machine", {}).get("date", "earlier")
    if a.sampling:
        result["sampling"] = sampling_section(target, drafts, prompts, a.new_tokens)
    if a.save is not None:
        cast.bench.save_benchmark(result, a.save)
        print(f"saved {a.save}")
    head = cast.bench.headline(result, a.prompts, a.new_tokens)
    head.update(result.get("sampling", {}))
    head["prompt_set"] = "held-out MT-Bench + HumanEval" if a.prompt_file is None else str(a.prompt_file)
    head.update({"cpu": cpu_model(), "blas": blas_name(), "loadavg_end": [round(x, 2) for x in os.getloadavg()]})
    print(json.dumps(head))


def sampling_section(target, drafts: dict, prompts, new_tokens: int) -> dict:
    """Speculative sampling at T = 0.7 against the plain sampled loop, batch 1, with the feature draft: printed, and keys."""
    name = "eagle" if "eagle" in drafts else next(iter(drafts))
    print(f"\nsampling at T = 0.7, batch 1, draft {name!r}, load average {os.getloadavg()} (lossless in distribution: "
          "tests/cast/test_cast_sampling.py)")
    sp = cast.bench.sampling_speed(target, drafts[name], prompts, 0.7, 1.0, new_tokens)
    for k, v in sp.items():
        if isinstance(v, dict):
            print(f"  {k:14s} {v['tokens_per_s']:6.2f} tok/s (range {v['range'][0]:.2f}-{v['range'][1]:.2f}), "
                  f"{v['tokens_per_call']:.2f} tokens per target call" + (f", {v['speedup']:.2f}x plain" if "speedup" in v else ""))
    best = max((k for k, v in sp.items() if isinstance(v, dict) and "speedup" in v), key=lambda k: sp[k]["speedup"])
    return {"sampling_speedup_t07": round(sp[best]["speedup"], 3), "sampling_policy_t07": best,
            "sampling_draft_t07": name, "sampling_loadavg": [round(x, 2) for x in os.getloadavg()]}


if __name__ == "__main__":
    main()
