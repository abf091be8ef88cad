"""Benchmark D2DMoE on the sparsified MiniLM multiemo classifier (and the task world's `large` model): dense,
dynamic-k over tau and static top-k over k, accuracy and FFN FLOPs relative to dense, and the FFN layers'
wall time (grouped MoE path, router included) against the dense FFNs in the same run.

    python benchmarks/d2dmoe.py [--experts 96] [--items 600] [--tw-experts 32] [--tw-items 300] [--quick]

Everything is evaluated in this one run on the same test items. Wall times are medians of interleaved
dense/MoE repeats on one thread, with the load average printed (numbers taken on a loaded machine are not
final). The last line is one JSON object.
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

from nblib import d2dmoe as D  # noqa: E402


def table(s: dict) -> list[str]:
    """Rows 'rule value accuracy FLOPs experts/token' of one sweep."""
    d = s["dense"]
    rows = [f"{'rule':<6} {'value':>6} {'accuracy':>9} {'FFN FLOPs':>10} {'experts/token':>14}",
            f"{'dense':<6} {'':>6} {d['accuracy'] * 100:8.1f}% {100:9.0f}% {s['n_experts']:14.1f}"]
    for rule in ("dynk", "topk"):
        for p in s[rule]:
            v = f"{p['value']:g}" if rule == "dynk" else f"{int(p['value'])}"
            rows.append(f"{rule:<6} {v:>6} {p['accuracy'] * 100:8.1f}% {p['ffn_flops_ratio'] * 100:9.1f}% "
                        f"{sum(p['experts_per_token']) / len(p['experts_per_token']):14.1f}")
    return rows


def summary(s: dict, tol: float = 1.0) -> dict:
    """Savings at `tol` points for both rules and the equal-FLOPs comparison."""
    dense = s["dense"]["accuracy"]
    saved, best = D.bench.saved_at(s["dynk"], dense, tol)
    saved_k, best_k = D.bench.saved_at(s["topk"], dense, tol)
    eq = D.bench.topk_at_equal_flops(s["dynk"], s["topk"])
    return {"dense_accuracy": dense, "saved": saved, "tau": None if best is None else best["value"],
            "best": best, "saved_topk": saved_k, "k": None if best_k is None else int(best_k["value"]),
            "equal_flops": eq}


def main() -> None:
    """Sweep both models, time the FFN layers at the chosen tau; print tables, then one JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experts", type=int, default=96, help="MiniLM experts per FFN (committed: 96, 48, 24)")
    ap.add_argument("--items", type=int, default=600, help="multiemo test reviews")
    ap.add_argument("--tw-experts", type=int, default=32, help="task-world experts per FFN (64, 32, 16)")
    ap.add_argument("--tw-items", type=int, default=300, help="task-world test problems")
    ap.add_argument("--wall-reviews", type=int, default=64, help="reviews whose FFN inputs are timed")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="fewer items (CI)")
    a = ap.parse_args()
    if a.quick:
        a.items, a.tw_items, a.wall_reviews = 100, 64, 32
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    print(f"load average at start {os.getloadavg()} (wall-clock figures under load are not final)")

    s = D.bench.sweep("minilm", a.experts, a.items, progress=False)
    print(f"\nMiniLM multiemo, {a.items} test reviews, {s['n_experts']} experts of {s['expert_size']} per FFN")
    print("\n".join(table(s)))
    m = summary(s)

    # wall time of the FFN layers at the chosen tau (and a few others), on real inputs under that rule
    model, layers = D.load_moe("minilm", a.experts)
    reviews = D.load_multiemo("test", a.wall_reviews)
    taus = sorted({0.0, 0.1, 0.3, 0.5} | ({m["tau"]} if m["tau"] is not None else set()))
    walls = {}
    print(f"\nFFN layers' wall time, {a.wall_reviews} reviews, {a.threads} thread(s), grouped MoE vs dense:")
    for tau in taus:
        inputs = D.bench.capture_inputs("minilm", model, layers, reviews, "dynk", tau)
        w = D.bench.ffn_wall_time(layers, inputs, tau=tau)
        walls[tau] = w
        print(f"  tau {tau:<5g} dense {w['dense_ms']:7.1f} ms  MoE {w['moe_ms']:7.1f} ms  ratio {w['ratio']:.2f} "
              f"(range {w['ratio_range'][0]:.2f}-{w['ratio_range'][1]:.2f}), {w['tokens']} tokens, "
              f"load {tuple(round(x, 2) for x in w['loadavg'])}")
    kw = D.bench.ffn_wall_time(layers, D.bench.capture_inputs("minilm", model, layers, reviews, "topk", m["k"] or 1),
                               k=m["k"] or 1)
    print(f"  top-k {m['k'] or 1}: ratio {kw['ratio']:.2f}")
    wall_ratio = walls[m["tau"]]["ratio"] if m["tau"] is not None else None

    t = D.bench.sweep("taskworld", a.tw_experts, a.tw_items, progress=False)
    print(f"\nTask world 'large', {a.tw_items} test problems, {t['n_experts']} experts of {t['expert_size']} per FFN")
    print("\n".join(table(t)))
    tw = summary(t)

    for name, sm in (("MiniLM", m), ("task world", tw)):
        eq = sm["equal_flops"]
        gap = [100 * (e["dynk_accuracy"] - e["topk_accuracy"]) for e in eq]
        print(f"\n{name}: dense {sm['dense_accuracy'] * 100:.1f} %; within 1 point: dynamic-k saves "
              f"{sm['saved'] * 100:.0f} % of FFN FLOPs (tau {sm['tau']}), static top-k {sm['saved_topk'] * 100:.0f} % "
              f"(k {sm['k']}); dynamic-k minus top-k at equal FLOPs: "
              + (", ".join(f"{g:+.1f}" for g in gap) if gap else "no overlap") + " points")
    if m["best"] is not None:
        lo, hi = D.evaluate.bootstrap_diff([c == "1" for c in m["best"]["correct"]],
                                           [c == "1" for c in s["dense"]["correct"]])
        print(f"MiniLM accuracy change at tau {m['tau']}: 95 % bootstrap interval [{lo:+.1f}, {hi:+.1f}] points")
    out = {
        "dense_accuracy": round(m["dense_accuracy"], 4),
        "ffn_flops_saved_at_1pt": round(m["saved"], 4),
        "tau_at_1pt": m["tau"],
        "static_topk_ffn_flops_saved_at_1pt": round(m["saved_topk"], 4),
        "ffn_wall_time_ratio_at_that_tau": None if wall_ratio is None else round(wall_ratio, 3),
        "static_topk_ffn_wall_time_ratio": round(kw["ratio"], 3),
        "dynk_minus_topk_at_equal_flops_pts": [round(100 * (e["dynk_accuracy"] - e["topk_accuracy"]), 2)
                                               for e in m["equal_flops"]],
        "n_experts": s["n_experts"], "expert_size": s["expert_size"], "items": a.items,
        "taskworld_dense_accuracy": round(tw["dense_accuracy"], 4),
        "taskworld_ffn_flops_saved_at_1pt": round(tw["saved"], 4),
        "taskworld_static_topk_ffn_flops_saved_at_1pt": round(tw["saved_topk"], 4),
        "threads": a.threads, "loadavg": [round(x, 2) for x in os.getloadavg()],
        "wall_s": round(time.perf_counter() - t0, 1), "quick": a.quick,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
