"""Benchmark the cost model on the embedded SmolLM2: analytic vs measured FLOPs, decode tokens/s at batch 1 and 8
against the roofline bound (this machine's measured read bandwidth and matmul FLOP/s).

    python benchmarks/cost_model.py [--model smollm2] [--tokens 32] [--repeats 3]

Everything is measured in this one run, side by side; the last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch

from nblib import cost, measuring, zoo


def decode_tokens_per_s(model, batch: int, prompt: int, new: int) -> tuple[float, float]:
    """Greedy-decode `new` tokens for `batch` random prompts with the KV cache; return (tokens/s, ms/step)."""
    ids = torch.randint(1000, model.config.vocab_size, (batch, prompt), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
        cache, nxt = out.cache, out.logits[:, -1].argmax(-1, keepdim=True)
        t0 = time.perf_counter()
        for _ in range(new):
            out = model(input_ids=nxt, cache=cache, use_cache=True)
            cache, nxt = out.cache, out.logits[:, -1].argmax(-1, keepdim=True)
        dt = time.perf_counter() - t0
    return batch * new / dt, dt / new * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--tokens", type=int, default=32, help="decode steps per measurement")
    ap.add_argument("--prompt", type=int, default=32, help="prompt tokens")
    ap.add_argument("--repeats", type=int, default=3, help="measurements per batch size (median kept)")
    args = ap.parse_args()
    cost.check_positive(tokens=args.tokens, prompt=args.prompt, repeats=args.repeats)

    model, _ = zoo.load_causal_lm(args.model)
    shape = cost.TransformerShape.from_config(model.config)
    print(f"{args.model}: {zoo.n_params(model):,} params, {torch.get_num_threads()} threads, {zoo.best_device()}")

    print("\nFLOPs of one forward (analytic vs torch FlopCounterMode)")
    check = measuring.flops_check(model)
    print(check.to_string(index=False, float_format=lambda v: f"{v:,.4f}"))
    ratios = list(check["analytic / measured"])

    print("\nGreedy decode with the KV cache (median of repeats, after one warm-up)")
    decode_tokens_per_s(model, 1, args.prompt, 4)  # warm-up
    result = {}
    for b in (1, 8):
        runs = sorted(decode_tokens_per_s(model, b, args.prompt, args.tokens) for _ in range(args.repeats))
        tps, ms = runs[len(runs) // 2]
        result[b] = tps
        print(f"batch {b}: {tps:7.1f} tokens/s  ({ms:.1f} ms per step, runs {[round(r[0], 1) for r in runs]})")
    print(f"batch 8 / batch 1 throughput: {result[8] / result[1]:.2f}x")

    limits = cost.measure_machine()
    weight_bytes = measuring.weight_bytes(model)
    per_token = cost.transformer_flops(shape, 1, 1, past=args.prompt + args.tokens // 2)
    print(f"\nRoofline: {limits}; weights {weight_bytes / 1e6:,.0f} MB, {per_token / 1e9:.3f} GFLOPs per token")
    bounds = {}
    for b in (1, 8):
        bound = cost.decode_bound_tokens_per_s(limits, weight_bytes, per_token, batch=b)
        bounds[b] = bound["bound_tokens_per_s"]
        print(f"batch {b}: bound {bounds[b]:7.1f} tokens/s ({bound['limited_by']}), measured {result[b]:7.1f} "
              f"= {result[b] / bounds[b]:.2f} of the bound")
    print(f"load average {os.getloadavg()[0]:.2f}")

    print(json.dumps({
        "benchmark": "cost_model", "model": args.model, "params": zoo.n_params(model),
        "flops_analytic_over_measured_min": round(min(ratios), 6),
        "flops_analytic_over_measured_max": round(max(ratios), 6),
        "decode_tokens_per_s_batch1": round(result[1], 2), "decode_tokens_per_s_batch8": round(result[8], 2),
        "batch8_over_batch1": round(result[8] / result[1], 3), "threads": torch.get_num_threads(),
        "read_gb_per_s": round(limits.read_bytes_per_s / 1e9, 2),
        "matmul_gflops_per_s": round(limits.matmul_flops_per_s / 1e9, 1),
        "decode_b1_bandwidth_bound_tokens_per_s": round(bounds[1], 2),
        "decode_b1_over_bandwidth_bound": round(result[1] / bounds[1], 3),
    }))


if __name__ == "__main__":
    main()
