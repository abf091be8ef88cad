"""Benchmark D2DMoE: one MiniLM request, dense vs the compiled dynamic-k kernel, live; the rest from committed data.

    python benchmarks/d2dmoe.py [--experts 24] [--tokens 32 64 128] [--repeats 30] [--items 20] [--threads 2]
                                [--quick]

What is LIVE (measured in this run, on this machine):
  - ONE request at a time (batch 1, exactly 64 real tokens of multiemo test reviews; also 32 and 128 unless
    --quick) through the sparsified MiniLM converted into 24 experts of 64 neurons per FFN
    (`d2dmoe.load_moe("minilm", 24)`): the whole model forward and the six FFN layers alone, dense (two torch
    matmuls per layer) vs MoE (the compiled grouped kernel, router inside the call), interleaved A/B, median
    over --repeats, `--threads` threads, via `nblib.d2dmoe.latency.request_latency`, at the 1-point tau. The
    1-point tau is taken the way scripts/d2dmoe_latency.py takes it: the dynamic-k tau with the fewest FFN
    FLOPs within 1 point of dense accuracy in data/d2dmoe/sweep_minilm.json (same expert count).
    Without --quick, also tau 0 and 0.2 and the 1-point top-k at 64 tokens (latency should fall with FLOPs).
  - the machine: CPU model, BLAS, threads, load average (`latency.machine()`), before and after.

What is COMMITTED (read from data/d2dmoe/, not re-measured here; each file's rebuild command is in
data/d2dmoe/README.md):
  - latency_minilm.json: the same latency measurement taken when it was committed (scripts/d2dmoe_latency.py),
    printed beside the live figures (`committed_*` keys);
  - sweep_minilm.json: accuracy vs FFN FLOPs on 600 test reviews -> `ffn_flops_saved_at_1pt`, `tau_at_1pt`
    (`bench.saved_at`, tol 1 point);
  - fair_minilm.json: the fair dynamic-k vs top-k comparison (`fair.verdict`): router and oracle (true expert
    norms), FLOPs over real tokens (ours) and over padded positions (the official code's), longer-trained routers;
  - smollm2_oracle.json: SmolLM2-135M perplexity under the oracle expert rule, before and after step one's
    fine-tune (scripts/d2dmoe_smollm2.py);
  - sweep_taskworld.json: the task world's v2-large, 32 experts.

Live wall-clock figures taken on a loaded machine are not final: compare the load average printed with them.
The last line of stdout is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nblib import cache  # noqa: E402
from nblib import d2dmoe as D  # noqa: E402
from nblib.d2dmoe import fair  # noqa: E402
from nblib.d2dmoe import latency as L  # noqa: E402

DATA = D.data.DATA_DIR
TOKENS_PER_REQUEST = 64        # the headline request length


def committed(name: str, rebuild: str) -> dict:
    """A committed JSON file under data/d2dmoe/ (a clear error naming its rebuild command when missing)."""
    return cache.read_json(DATA / name, rebuild=rebuild)


def sweep_for(record: dict, n_experts: int) -> dict | None:
    """The sweep of a committed sweep file with this expert count, or None."""
    return next((s for s in record["sweeps"] if s["n_experts"] == n_experts), None)


def tau_at_1pt(sweep: dict) -> tuple[float | None, float, dict | None]:
    """(tau, FFN FLOPs saved, point): the dynamic-k point with the fewest FLOPs within 1 point of dense accuracy
    (as scripts/d2dmoe_latency.py takes it)."""
    saved, best = D.bench.saved_at(sweep["dynk"], sweep["dense"]["accuracy"], 1.0)
    return (None if best is None else best["value"]), saved, best


def accuracy_table(s: dict) -> list[str]:
    """Rows 'rule value accuracy FLOPs experts/token' of one committed accuracy sweep."""
    d = s["dense"]
    rows = [f"  {'rule':<6} {'value':>6} {'accuracy':>9} {'FFN FLOPs':>10} {'experts/token':>14}",
            f"  {'dense':<6} {'':>6} {d['accuracy'] * 100:8.1f}% {100:9.0f}% {s['n_experts']:14.1f}"]
    for rule in ("dynk", "topk"):
        for p in s[rule]:
            v = f"{p['value']:g}" if rule == "dynk" else f"{int(p['value'])}"
            rows.append(f"  {rule:<6} {v:>6} {p['accuracy'] * 100:8.1f}% {p['ffn_flops_ratio'] * 100:9.1f}% "
                        f"{sum(p['experts_per_token']) / len(p['experts_per_token']):14.1f}")
    return rows


def committed_latency(record: dict, n_experts: int, tau: float | None) -> tuple[dict, dict]:
    """From latency_minilm.json: per token count the committed summary row at the 1-point tau, and the machine."""
    rows = {r["tokens"]: r for r in record["summary"]
            if r.get("measured") and r["n_experts"] == n_experts and r["tau_1pt"] == tau}
    s = sweep_for(record, n_experts)
    p = L.at_value(s["dynk"], tau) if s is not None and tau is not None else None
    if p is not None:                                   # the dense request's milliseconds then, beside today's
        for r in p["by_tokens"]:
            if r["tokens"] in rows:
                rows[r["tokens"]] = {**rows[r["tokens"]], "dense_request_ms": r["request_ms"]["dense"]["median"],
                                     "moe_request_ms": r["request_ms"]["moe"]["median"]}
    return rows, (s or {}).get("machine", {})


def live_row(res: dict) -> dict[int, dict]:
    """request_latency's result per token count, flattened to the figures printed and reported."""
    out = {}
    for r in res["by_tokens"]:
        out[r["tokens"]] = {"ffn_flops_ratio": r["ffn_flops_ratio"], "experts_per_token": r["experts_per_token"],
                            "request_latency_ratio": r["request_ratio"]["ratio"],
                            "request_ratio_iqr": [r["request_ratio"]["q1"], r["request_ratio"]["q3"]],
                            "ffn_time_ratio": r["ffn_ratio"]["ratio"],
                            "ffn_ratio_iqr": [r["ffn_ratio"]["q1"], r["ffn_ratio"]["q3"]],
                            "dense_request_ms": r["request_ms"]["dense"]["median"],
                            "moe_request_ms": r["request_ms"]["moe"]["median"],
                            "dense_ffn_ms": r["ffn_ms"]["dense"]["median"], "moe_ffn_ms": r["ffn_ms"]["moe"]["median"],
                            "ffn_share_of_dense_request": r["ffn_share_of_dense_request"]}
    return out


def r3(x):
    """Round a float to 3 places (None stays None)."""
    return None if x is None else round(float(x), 3)


def r2(x):
    """Round a float to 2 places (None stays None)."""
    return None if x is None else round(float(x), 2)


def main() -> None:
    """Time one request live, read the committed sweeps; print side-by-side tables, then one JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experts", type=int, default=24, help="MiniLM experts per FFN (24 = 64 neurons each)")
    ap.add_argument("--tokens", type=int, nargs="+", default=[32, 64, 128], help="real tokens per request")
    ap.add_argument("--repeats", type=int, default=30, help="interleaved dense/MoE repeats per request length")
    ap.add_argument("--items", type=int, default=20, help="multiemo test reviews the requests are cut from")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="64 tokens only, fewer repeats, no extra taus (CI)")
    a = ap.parse_args()
    if a.quick:
        a.tokens, a.repeats = [TOKENS_PER_REQUEST], min(a.repeats, 10)
    if TOKENS_PER_REQUEST not in a.tokens:
        a.tokens = sorted({*a.tokens, TOKENS_PER_REQUEST})
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    before = L.machine(a.threads)
    print(f"machine: {before['cpu']}, {before['cores']} cores, {a.threads} threads, torch {before['torch']} "
          f"({before['blas']}); {before['kernel']}")
    print(f"load average at start {tuple(before['loadavg'])} (wall-clock figures under load are not final)")

    # ---- committed: the accuracy sweep -> the 1-point tau (exactly as scripts/d2dmoe_latency.py takes it)
    sweeps = committed("sweep_minilm.json", "python scripts/d2dmoe_sweep.py --model minilm")
    s = sweep_for(sweeps, a.experts)
    if s is None:
        raise SystemExit(f"data/d2dmoe/sweep_minilm.json has no sweep for {a.experts} experts "
                         f"(it has {[x['n_experts'] for x in sweeps['sweeps']]}); pick one of those with --experts")
    tau, saved, best = tau_at_1pt(s)
    if tau is None:
        raise SystemExit(f"no dynamic-k tau within 1 point of dense in sweep_minilm.json for {a.experts} experts")
    saved_k, best_k = D.bench.saved_at(s["topk"], s["dense"]["accuracy"], 1.0)
    k_1pt = None if best_k is None else int(best_k["value"])
    print(f"\nCOMMITTED accuracy sweep (data/d2dmoe/sweep_minilm.json): MiniLM multiemo, {s['n_items']} test reviews, "
          f"{s['n_experts']} experts of {s['expert_size']} per FFN")
    print("\n".join(accuracy_table(s)))
    print(f"  within 1 point of dense ({s['dense']['accuracy'] * 100:.1f} %): dynamic-k tau {tau:g} saves "
          f"{saved * 100:.1f} % of FFN FLOPs (accuracy {best['accuracy'] * 100:.1f} %); static top-k k={k_1pt} "
          f"saves {saved_k * 100:.1f} %")

    # ---- live: one request at a time, dense vs the compiled kernel, at the 1-point tau
    model, layers = D.load_moe("minilm", a.experts)
    texts = D.load_multiemo("test", a.items)
    res = L.request_latency(model, layers, texts, tau=tau, n_tokens=a.tokens, repeats=a.repeats,
                            n_threads=a.threads)
    live = live_row(res)
    extra = []
    if not a.quick:       # latency vs FLOPs at 64 tokens: every expert (tau 0), a looser tau, the 1-point top-k
        for kw in ({"tau": 0.0}, {"tau": 0.2}) + (({"k": k_1pt},) if k_1pt else ()):
            r = L.request_latency(model, layers, texts, n_tokens=[TOKENS_PER_REQUEST], repeats=a.repeats,
                                  n_threads=a.threads, **kw)
            extra.append((r["rule"], r["value"], live_row(r)[TOKENS_PER_REQUEST]))

    lat = L.load_record()
    old, old_machine = committed_latency(lat, a.experts, tau)
    print(f"\nLIVE one request (batch 1), {a.experts} experts of {layers[0].size}, dynamic-k tau {tau:g}, "
          f"{a.threads} threads, median of {a.repeats} interleaved repeats; COMMITTED = latency_minilm.json "
          f"({old_machine.get('cpu', '?')}, load {tuple(old_machine.get('loadavg', []))})")
    print(f"  {'tokens':>6} {'FLOPs':>6} | {'request ratio':>13} {'(IQR)':>13} {'committed':>9} | "
          f"{'FFN time ratio':>14} {'(IQR)':>13} {'committed':>9} | {'dense ms':>8} {'MoE ms':>7} {'committed dense':>15}")
    for n, r in sorted(live.items()):
        c = old.get(n, {})
        cr = f"{c['request_latency_ratio']:.3f}" if c else "-"
        cf = f"{c['ffn_time_ratio']:.3f}" if c else "-"
        cd = f"{c['dense_request_ms']:.1f} ms" if c.get("dense_request_ms") else "-"
        print(f"  {n:>6} {r['ffn_flops_ratio']:6.3f} | {r['request_latency_ratio']:13.3f} "
              f"{'(%.2f-%.2f)' % tuple(r['request_ratio_iqr']):>13} {cr:>9} | {r['ffn_time_ratio']:14.3f} "
              f"{'(%.2f-%.2f)' % tuple(r['ffn_ratio_iqr']):>13} {cf:>9} | {r['dense_request_ms']:8.1f} "
              f"{r['moe_request_ms']:7.1f} {cd:>15}")
    if extra:
        print(f"  LIVE at {TOKENS_PER_REQUEST} tokens, other rules (latency should fall with FFN FLOPs):")
        rows = sorted(extra + [("dynk", tau, live[TOKENS_PER_REQUEST])], key=lambda e: -e[2]["ffn_flops_ratio"])
        for rule, v, r in rows:
            print(f"    {rule} {v:<5g} FFN FLOPs {r['ffn_flops_ratio']:.3f}  FFN time {r['ffn_time_ratio']:.3f}  "
                  f"request {r['request_latency_ratio']:.3f} ({r['moe_request_ms']:.1f}/{r['dense_request_ms']:.1f} ms)")
    head = live[TOKENS_PER_REQUEST]
    head_old = old.get(TOKENS_PER_REQUEST, {})

    # ---- committed: the fair dynamic-k vs top-k comparison
    fr = committed("fair_minilm.json", "python scripts/d2dmoe_fair.py --experts 24 --items 600")
    fs = [x for x in fr["sweeps"] if x["n_experts"] == a.experts]
    trained = next((x for x in fs if x.get("routers") == "trained"), None)
    longer = next((x for x in fs if str(x.get("routers", "")).startswith("longer")), None)
    v = fair.verdict(trained) if trained is not None else {}
    vl = fair.verdict(longer) if longer is not None else {}
    # fair.gap_at_equal_flops already returns accuracy differences in POINTS (fraction difference x 100), so
    # the verdict's dynk_minus_topk_* values are used as they are: no further conversion.
    gaps = {"router_unpadded": r2(v.get("dynk_minus_topk_router_unpadded")),
            "router_padded": r2(v.get("dynk_minus_topk_router_padded")),
            "oracle_unpadded": r2(v.get("dynk_minus_topk_oracle_unpadded")),
            "oracle_padded": r2(v.get("dynk_minus_topk_oracle_padded")),
            "longer_routers_unpadded": r2(vl.get("dynk_minus_topk_router_unpadded")),
            "longer_routers_padded": r2(vl.get("dynk_minus_topk_router_padded")),
            "per_layer_tau_extension_unpadded": r2(v.get("dynk_minus_topk_per_layer_vs_topk_unpadded")),
            "per_layer_tau_extension_padded": r2(v.get("dynk_minus_topk_per_layer_vs_topk_padded"))}
    if v:
        print(f"\nCOMMITTED fair comparison (data/d2dmoe/fair_minilm.json), {v['n_items']} reviews, {a.experts} "
              f"experts; dynamic-k minus top-k at equal FFN FLOPs, mean over the overlapping range, in points "
              f"(FLOPs over real tokens / over padded positions; {v['real_token_share'] * 100:.1f} % real):")
        for name, k in (("routers", "router"), ("oracle (true norms)", "oracle"), ("longer routers", "longer_routers"),
                        ("per-layer tau (extension)", "per_layer_tau_extension")):
            print(f"  {name:<26} {gaps[k + '_unpadded']!s:>6} / {gaps[k + '_padded']!s:>6}")
        print("  FFN FLOPs saved within 1 point: " + ", ".join(
            f"{fair.LABELS[r]} {v['saved_' + r] * 100:.1f} %" for r in fair.RULES if f"saved_{r}" in v))
        if vl:
            print(f"  longer routers: dynamic-k {vl['saved_dynk'] * 100:.1f} %, top-k {vl['saved_topk'] * 100:.1f} %")
        for p in v.get("paired_router", []):
            print(f"  paired (routers) tau {p['a_value']:g} vs k {p['b_value']:g}: {p['diff_pts']:+.1f} points, "
                  f"95 % interval [{p['ci95'][0]:+.1f}, {p['ci95'][1]:+.1f}] at FLOPs {p['a_flops']:.2f}/{p['b_flops']:.2f}")

    # ---- committed: SmolLM2 (step one on a SiLU decoder)
    sm = D.decoder.load_record()["summary"]
    print(f"\nCOMMITTED SmolLM2-135M (data/d2dmoe/smollm2_oracle.json, {sm['n_experts']} experts of "
          f"{sm['expert_size']}, oracle rule, {sm['eval_tokens']} MT-Bench tokens): dense perplexity "
          f"{sm['smollm2_dense_ppl']:.2f}; at 95 % of the expert FLOPs {sm['smollm2_oracle_ppl_at_95pct']:.2f} "
          f"(+{sm['smollm2_oracle_ppl_increase_at_95pct'] * 100:.1f} %); after the {sm['finetune_minutes']:.1f}-minute "
          f"ReLU+LoRA fine-tune ({sm['finetune_tokens']} tokens), at {sm['smollm2_finetuned_ppl_increase_share'] * 100:.0f} % "
          f"share: +{sm['smollm2_finetuned_ppl_increase'] * 100:.0f} % vs the original dense")

    # ---- committed: the task world's v2-large
    tw_rec = committed("sweep_taskworld.json", "python scripts/d2dmoe_sweep.py --model taskworld")
    tw = sweep_for(tw_rec, 32) or tw_rec["sweeps"][0]
    tw_dense = tw["dense"]["accuracy"]
    tw_saved, tw_best = D.bench.saved_at(tw["dynk"], tw_dense, 1.0)
    tw_saved_k, _ = D.bench.saved_at(tw["topk"], tw_dense, 1.0)
    print(f"\nCOMMITTED task world v2-large (data/d2dmoe/sweep_taskworld.json), {tw['n_items']} test problems, "
          f"{tw['n_experts']} experts of {tw['expert_size']}:")
    print("\n".join(accuracy_table(tw)))
    print(f"  within 1 point: dynamic-k saves {tw_saved * 100:.1f} % of FFN FLOPs, static top-k {tw_saved_k * 100:.1f} %")

    after = L.machine(a.threads)
    goals = {"request_latency_le_0.85": head["request_latency_ratio"] <= 0.85,
             "ffn_time_le_0.6": head["ffn_time_ratio"] <= 0.6, "flops_saved_ge_0.40": saved >= 0.40}
    print(f"\nGOALS at the 1-point tau {tau:g}, {TOKENS_PER_REQUEST} tokens (live): request latency "
          f"{head['request_latency_ratio']:.3f}x dense (<= 0.85: {goals['request_latency_le_0.85']}), FFN time "
          f"{head['ffn_time_ratio']:.3f}x (<= 0.6: {goals['ffn_time_le_0.6']}); committed: {saved * 100:.1f} % FFN "
          f"FLOPs saved (>= 40 %: {goals['flops_saved_ge_0.40']}). Load average {tuple(after['loadavg'])}.")
    out = {
        # live, this run (64 tokens unless said)
        "request_latency_ratio_at_1pt": r3(head["request_latency_ratio"]),
        "ffn_time_ratio_at_1pt": r3(head["ffn_time_ratio"]),
        "ffn_flops_ratio_live_at_1pt": r3(head["ffn_flops_ratio"]),
        "dense_request_ms": r2(head["dense_request_ms"]), "moe_request_ms": r2(head["moe_request_ms"]),
        "request_latency_ratio_by_tokens": {str(n): r3(r["request_latency_ratio"]) for n, r in sorted(live.items())},
        "ffn_time_ratio_by_tokens": {str(n): r3(r["ffn_time_ratio"]) for n, r in sorted(live.items())},
        "live_other_rules_at_64": [{"rule": rule, "value": val, "ffn_flops_ratio": r3(r["ffn_flops_ratio"]),
                                    "ffn_time_ratio": r3(r["ffn_time_ratio"]),
                                    "request_latency_ratio": r3(r["request_latency_ratio"])} for rule, val, r in extra],
        "repeats": a.repeats,
        # committed latency_minilm.json, same setting
        "committed_request_latency_ratio_at_1pt": r3(head_old.get("request_latency_ratio")),
        "committed_ffn_time_ratio_at_1pt": r3(head_old.get("ffn_time_ratio")),
        "committed_dense_request_ms": r2(head_old.get("dense_request_ms")),
        "committed_request_latency_ratio_by_tokens": {str(n): r3(r["request_latency_ratio"]) for n, r in sorted(old.items())},
        "committed_ffn_time_ratio_by_tokens": {str(n): r3(r["ffn_time_ratio"]) for n, r in sorted(old.items())},
        "committed_latency_cpu": old_machine.get("cpu"), "committed_latency_loadavg": old_machine.get("loadavg"),
        # committed sweep_minilm.json
        "ffn_flops_saved_at_1pt": round(saved, 4), "tau_at_1pt": tau, "dense_accuracy": round(s["dense"]["accuracy"], 4),
        "static_topk_ffn_flops_saved_at_1pt": round(saved_k, 4), "topk_k_at_1pt": k_1pt,
        "expert_size": layers[0].size, "n_experts": a.experts, "tokens_per_request": TOKENS_PER_REQUEST,
        # committed fair_minilm.json (fair.verdict); gaps in accuracy POINTS
        "dynk_minus_topk_at_equal_flops_pts": gaps,
        "topk_ffn_flops_saved_at_1pt": r3(v.get("saved_topk")),
        "oracle_ffn_flops_saved_at_1pt": r3(v.get("saved_oracle")),
        "oracle_topk_ffn_flops_saved_at_1pt": r3(v.get("saved_oracle_topk")),
        "longer_routers_ffn_flops_saved_at_1pt": r3(vl.get("saved_dynk")),
        # committed smollm2_oracle.json (scripts/d2dmoe_smollm2.py)
        "smollm2_oracle_ppl_increase_at_95pct": r3(sm["smollm2_oracle_ppl_increase_at_95pct"]),
        "smollm2_finetuned_ppl_increase": r3(sm["smollm2_finetuned_ppl_increase"]),
        "smollm2_finetuned_ppl_increase_share": sm["smollm2_finetuned_ppl_increase_share"],
        "smollm2_source": "committed data/d2dmoe/smollm2_oracle.json",
        # committed sweep_taskworld.json (v2-large)
        "taskworld_n_experts": tw["n_experts"],
        "taskworld_dense_accuracy": round(tw_dense, 4),
        "taskworld_ffn_flops_saved_at_1pt": round(tw_saved, 4),
        "taskworld_tau_at_1pt": None if tw_best is None else tw_best["value"],
        "taskworld_topk_ffn_flops_saved_at_1pt": round(tw_saved_k, 4),
        "goals": goals,
        "cpu": after["cpu"], "blas": after["blas"], "kernel": after["kernel"], "threads": a.threads,
        "loadavg_start": before["loadavg"], "loadavg": after["loadavg"],
        "wall_s": round(time.perf_counter() - t0, 1), "quick": a.quick,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
