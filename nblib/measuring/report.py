"""Notebook 00's readable table and computed prose: the sweep in units, and the sentences that read it.

Every number in these sentences comes from the sweep (`nblib.prose`), and so does every word that judges one
("grows far slower than the batch"): a re-run changes the sentence with the grid, never against it.
"""
from __future__ import annotations

from .. import prose
from . import sweep as sweep_mod


def sweep_table(sweep):
    """The sweep as a table a reader can scan: one row per point, times in ms, FLOPs in GFLOPs, memory in MB."""
    import pandas as pd

    t = pd.DataFrame({
        "batch": sweep["batch"].astype(int),
        "prompt tok": sweep["seq"].astype(int),
        "prefill ms": sweep["prefill_ms"],
        "prefill ± ms": sweep["prefill_spread_ms"] / 2,
        "decode step ms": sweep["decode_ms"],
        "decode ± ms": sweep["decode_spread_ms"] / 2,
        "prefill GFLOPs": sweep["prefill_flops"] / 1e9,
        "decode step GFLOPs": sweep["decode_flops"] / 1e9,
        "working MB": sweep["work_mb"],
        "peak MB": sweep["peak_mb"],
        "KV cache MB / token": sweep["kv_mb_per_token"],
    })
    if "remeasured" in sweep:
        t["re-measured"] = sweep["remeasured"].astype(int)
    if "noisy" in sweep:
        t["noisy"] = sweep["noisy"].astype(bool)
    return t


TABLE_FORMATS = {"prefill ms": "{:,.1f}", "prefill ± ms": "{:,.1f}", "decode step ms": "{:,.1f}",
                 "decode ± ms": "{:,.1f}", "prefill GFLOPs": "{:,.1f}", "decode step GFLOPs": "{:,.2f}",
                 "working MB": "{:,.0f}", "peak MB": "{:,.0f}", "KV cache MB / token": "{:,.3f}"}


def _point(sweep, batch: int, seq: int):
    row = sweep[(sweep["batch"] == batch) & (sweep["seq"] == seq)]
    if row.empty:
        raise ValueError(f"(batch={batch}, seq={seq}) is not in the sweep")
    return row.iloc[0]


def decode_growth(sweep, seq: int | None = None) -> dict:
    """A decode step at the largest batch against the smallest, at prompt length `seq` (default: the shortest)."""
    seq = int(min(sweep["seq"])) if seq is None else seq
    b0, b1 = int(min(sweep["batch"])), int(max(sweep["batch"]))
    lo, hi = _point(sweep, b0, seq), _point(sweep, b1, seq)
    time_ratio = float(hi["decode_ms"] / lo["decode_ms"])
    return {"seq": seq, "small": b0, "large": b1, "small_ms": float(lo["decode_ms"]), "large_ms": float(hi["decode_ms"]),
            "time_ratio": time_ratio, "batch_ratio": b1 / b0, "throughput_ratio": (b1 / b0) / time_ratio}


def sweep_sentences(sweep) -> str:
    """Notebook 00's reading of the sweep figure, computed: how prefill and one decode step grow with the batch."""
    s0, s1 = int(min(sweep["seq"])), int(max(sweep["seq"]))
    b0, b1 = int(min(sweep["batch"])), int(max(sweep["batch"]))
    p_lo, p_hi = _point(sweep, b0, s0), _point(sweep, b1, s1)
    tok_ratio = (b1 * s1) / (b0 * s0)
    p_ratio = float(p_hi["prefill_ms"] / p_lo["prefill_ms"])
    share = p_ratio / tok_ratio
    how = ("roughly in proportion to batch x prompt tokens" if 0.5 <= share <= 2 else
           "more slowly than batch x prompt tokens" if share < 0.5 else "faster than batch x prompt tokens")
    prefill = (f"Prefill time grows {how}: {prose.number(p_lo['prefill_ms'], ' ms', 0)} for batch {b0} x {s0} "
               f"tokens, {prose.number(p_hi['prefill_ms'], ' ms', 0)} for batch {b1} x {s1} "
               f"({prose.times(p_ratio, 1)} the time for {prose.times(tok_ratio, 0)} the tokens).")
    d = decode_growth(sweep, s0)
    if d["time_ratio"] <= 0.5 * d["batch_ratio"]:
        grows = ("far more slowly than the batch: most of a step is reading the weights, which every sequence in "
                 "the batch shares (memory-bound)")
    elif d["time_ratio"] <= 0.9 * d["batch_ratio"]:
        grows = "more slowly than the batch, though not for free: the weight reads are shared, the arithmetic is not"
    else:
        grows = "about as fast as the batch: here the arithmetic, not the weight reads, sets a step's time"
    decode = (f"One decode step (context {s0}) takes {prose.number(d['small_ms'], ' ms', 1)} for {b0} sequence"
              f"{'s' if b0 > 1 else ''} and {prose.number(d['large_ms'], ' ms', 1)} for {b1}: "
              f"{prose.times(d['time_ratio'], 1)} the time for {prose.times(d['batch_ratio'], 0)} the sequences, "
              f"so it grows {grows}.")
    thr = (f"Batching multiplies decode throughput by {prose.times(d['throughput_ratio'], 1)} at batch {b1}"
           + (", until the KV cache or the arithmetic catches up. That is why servers batch, and why the techniques "
              "in this suite count *forward passes* and *tokens*, not only FLOPs."
              if d["throughput_ratio"] >= 1.5 else ": little on this machine."))
    return " ".join([prefill, decode, thr])


def batching_sentence(sweep, seq: int, new_tokens: int) -> str:
    """One request at the smallest vs the largest batch (prompt `seq`, `new_tokens` generated): latency and throughput."""
    b0, b1 = int(min(sweep["batch"])), int(max(sweep["batch"]))
    p0 = sweep_mod.predict(sweep, b0, seq, new_tokens)
    p1 = sweep_mod.predict(sweep, b1, seq, new_tokens)
    lat = p1["total_ms"] / p0["total_ms"]
    thr = p1["tokens_per_s"] / p0["tokens_per_s"]
    if lat < 1.1:
        change = "barely changes"
    elif lat < 0.5 * b1 / b0:
        change = "grows, but far less than the batch"
    else:
        change = "grows almost as much as the batch"
    return (f"With a {seq}-token prompt and {new_tokens} new tokens, one request takes "
            f"{prose.number(p0['total_ms'], ' ms', 0)} at batch {b0} and {prose.number(p1['total_ms'], ' ms', 0)} "
            f"at batch {b1}: its latency {change} ({prose.times(lat, 2)}), while throughput grows "
            f"{prose.times(thr, 2)} ({prose.number(p0['tokens_per_s'], ' tok/s', 1)} -> "
            f"{prose.number(p1['tokens_per_s'], ' tok/s', 1)}).")
