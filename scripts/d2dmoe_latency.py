"""Measure one MiniLM request's wall-clock latency, dense vs D2DMoE: data/d2dmoe/latency_minilm.json.

For each expert count with committed routers (24 experts of 64 neurons; 12 of 128 when
data/d2dmoe/minilm_routers_e12.safetensors exists) `nblib.d2dmoe.latency.latency_sweep` times ONE request at a
time (batch 1, exactly 32 / 64 / 128 real tokens of multiemo test reviews, 2 threads): the whole model
forward and the six FFN layers alone, dense (`MoEFFN.dense_forward`, two torch matmuls) vs MoE (the compiled
grouped kernel, router inside the call), interleaved A/B, over dynamic-k taus and static top-k ks, with the
FFN FLOPs ratio of the same runs. The summary reads the tau within 1 point of dense accuracy from
data/d2dmoe/sweep_minilm.json (same expert count) and checks the issue-28 goals there. Run it on a quiet
machine (wrap it in `flock /tmp/heavy.lock` where other heavy jobs share the cores).

Usage: python scripts/d2dmoe_latency.py [--experts 24 12] [--repeats 20] [--texts 20]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from nblib import d2dmoe as D  # noqa: E402
from nblib.d2dmoe import latency as L  # noqa: E402

OUT = D.data.DATA_DIR / "latency_minilm.json"


def tau_at_1pt(n_experts: int) -> tuple[float | None, dict | None]:
    """The dynamic-k tau with the fewest FFN FLOPs within 1 point of dense accuracy (sweep_minilm.json), and its point."""
    path = D.data.DATA_DIR / "sweep_minilm.json"
    if not path.exists():
        return None, None
    for s in json.loads(path.read_text())["sweeps"]:
        if s["n_experts"] == n_experts:
            _, best = D.bench.saved_at(s["dynk"], s["dense"]["accuracy"])
            return (best["value"], best) if best else (None, None)
    return None, None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experts", type=int, nargs="+", default=None)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--texts", type=int, default=20)
    ap.add_argument("--tokens", type=int, nargs="+", default=list(L.N_TOKENS))
    args = ap.parse_args(argv)
    experts = args.experts or [E for E in (24, 12) if D.models.routers_path("minilm", E).exists()]
    texts = D.load_multiemo("test", args.texts)
    base = D.load_base("minilm", "sparse")
    t0 = time.perf_counter()
    sweeps, summary = [], []
    for E in experts:
        model, layers = D.load_moe("minilm", E)
        ks = [k for k in D.bench.ks_for(E) if k < E][:5]
        s = L.latency_sweep(model, layers, texts, taus=L.TAUS, ks=ks, n_tokens=args.tokens, repeats=args.repeats,
                            base_model=base, progress=True)
        tau, point = tau_at_1pt(E)
        s["tau_1pt"] = tau
        s["accuracy_at_1pt"] = None if point is None else {"accuracy": point["accuracy"],
                                                          "ffn_flops_ratio_600_items": point["ffn_flops_ratio"]}
        sweeps.append(s)
        for n in args.tokens:
            row = L.summary(s, tau, n)
            summary.append(row)
            print(json.dumps(row), flush=True)
        for r in L.table(s):
            print(f"E={E} {r['rule']} {r['value']:<5} T={r['tokens']:<4} flops {r['ffn_flops_ratio']:.3f} "
                  f"ffn {r['ffn_time_ratio']:.3f} ({r['moe_ffn_ms']:.2f}/{r['dense_ffn_ms']:.2f} ms) "
                  f"request {r['request_latency_ratio']:.3f} ({r['moe_request_ms']:.2f}/{r['dense_request_ms']:.2f} ms)",
                  flush=True)
        print("machine", s["machine"], "after", s["machine_after"]["loadavg"], flush=True)
    payload = {"model": "minilm", "sweeps": sweeps, "summary": summary, "wall_s": round(time.perf_counter() - t0, 1),
               "rebuild": "python scripts/d2dmoe_latency.py"}
    OUT.write_text(json.dumps(payload) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
