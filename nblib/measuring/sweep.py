"""Precomputed cost sweeps: measure once over a grid, then sliders only index the table."""
from __future__ import annotations

import platform
from dataclasses import dataclass

import numpy as np
import torch

from .. import checks, cost
from ..cache import cached, weights_fingerprint


SWEEP_VERSION = 4  # bump when point_costs / time_points changes what or how it measures


@dataclass(frozen=True)
class SweepConfig:
    """The grid of a prefill/decode cost sweep (batch sizes x prompt lengths)."""

    model: str
    batch_sizes: tuple[int, ...]
    seq_lens: tuple[int, ...]
    decode_steps: int = 8        # decode steps timed per point
    repeats: int = 3             # timed repeats of the prefill (median kept)
    seed: int = 0


def _random_ids(vocab: int, batch: int, seq: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = min(100, vocab // 2)  # skip the low ids, where special tokens live
    return torch.randint(low, vocab, (batch, seq), generator=g)  # (B, S)


def kv_cache_mb(shape: cost.TransformerShape, batch: int, tokens: int, bytes_per: int = 4) -> float:
    """Analytic KV-cache size in MB: 2 (K and V) x layers x kv heads x head dim x tokens x batch."""
    if not isinstance(shape, cost.TransformerShape):
        raise TypeError(f"shape must be a cost.TransformerShape (TransformerShape.from_config(model.config)), "
                        f"got {type(shape).__name__}")
    batch, tokens = checks.whole("batch", batch, low=1), checks.whole("tokens", tokens, low=0)
    bytes_per = checks.whole("bytes_per", bytes_per, low=1)
    return 2 * shape.n_layers * shape.n_kv_heads * shape.head_dim * tokens * batch * bytes_per / 1e6


def measure_point(model, batch: int, seq: int, decode_steps: int = 8, repeats: int = 3, seed: int = 0) -> dict:
    """Measure one (batch, prompt length) alone: its costs (`point_costs`) and its times (`time_points`)."""
    cost.check_positive(batch=batch, seq=seq, decode_steps=decode_steps, repeats=repeats)
    row = point_costs(model, batch, seq, decode_steps, seed)
    row.update(time_points(model, [(batch, seq)], decode_steps, repeats, seed)[(batch, seq)])
    return row


def point_costs(model, batch: int, seq: int, decode_steps: int = 8, seed: int = 0) -> dict:
    """One (batch, prompt length)'s FLOPs (measured and analytic), peak memory and KV-cache size; no timing."""
    cost.check_positive(batch=batch, seq=seq, decode_steps=decode_steps)
    shape = cost.TransformerShape.from_config(model.config)
    dev = next(model.parameters()).device
    ids = _random_ids(shape.vocab, batch, seq, seed).to(dev)
    nxt = _random_ids(shape.vocab, batch, decode_steps + 1, seed + 1).to(dev)

    def prefill():
        return model(input_ids=ids, use_cache=True, logits_to_keep=1)

    out, prefill_flops = cost.measure_flops(prefill)
    _, decode_flops = cost.measure_flops(lambda: model(input_ids=nxt[:, :1], cache=out.cache, use_cache=True))
    _, work_mb, peak_mb = cost.peak_memory(prefill, device=dev)  # RSS (CPU) / allocator (CUDA)
    return {
        "batch": batch, "seq": seq,
        "prefill_flops": prefill_flops,
        "prefill_flops_analytic": cost.transformer_flops(shape, batch, seq, logits_positions=1),
        "decode_flops": decode_flops,
        "decode_flops_analytic": cost.transformer_flops(shape, batch, 1, past=seq),
        "work_mb": work_mb,          # peak above the start: activations + KV cache of the prefill
        "peak_mb": peak_mb,          # process peak, weights included
        "kv_mb_per_token": kv_cache_mb(shape, batch, 1),  # whole batch, one more position
    }


MAX_SPREAD = 0.25   # a point whose repeats spread by more than this share of their median is measured again
RETRIES = 2         # fresh interleaved rounds for the points still noisy, at most this many times


def relative_spread(samples) -> float:
    """(max - min) / median of timing samples: 0 when the repeats agree."""
    samples = [float(x) for x in samples]
    if not samples:
        raise ValueError("relative_spread needs at least one sample")
    med = float(np.median(samples))
    return (max(samples) - min(samples)) / med if med > 0 else 0.0


def time_robust(fns: dict, repeats: int = 3, warmup: int = 1, max_spread: float = MAX_SPREAD,
                retries: int = RETRIES, device=None) -> dict:
    """Median of interleaved repeats per function; noisy ones flagged and re-measured.

    All functions are timed in rounds (A, B, C, A, B, C ...; `cost.time_interleaved`), so a burst of load hits
    them alike. A function whose repeats spread by more than `max_spread` of their median is flagged and timed
    again, with the other flagged ones, in fresh interleaved rounds that replace its samples; at most `retries`
    times. Returns name -> {"timing": cost.Timing, "remeasured": times re-measured, "noisy": still over the limit}.
    """
    cost.check_positive(repeats=repeats)
    checks.number("max_spread", max_spread, low=0)
    retries = checks.whole("retries", retries, low=0)
    timings = cost.time_interleaved(fns, warmup=warmup, repeats=repeats, device=device)
    remeasured = dict.fromkeys(fns, 0)
    for _ in range(retries):
        noisy = [k for k in fns if relative_spread(timings[k].samples_ms) > max_spread]
        if not noisy:
            break
        timings.update(cost.time_interleaved({k: fns[k] for k in noisy}, warmup=0, repeats=repeats, device=device))
        for k in noisy:
            remeasured[k] += 1
    return {k: {"timing": timings[k], "remeasured": remeasured[k],
                "noisy": relative_spread(timings[k].samples_ms) > max_spread} for k in fns}


def time_points(model, points, decode_steps: int = 8, repeats: int = 3, seed: int = 0,
                max_spread: float = MAX_SPREAD, retries: int = RETRIES, warmup: int = 1) -> dict:
    """Prefill and per-step decode times of every (batch, prompt length), interleaved; noisy points re-measured.

    Every point's prefill is one function and its `decode_steps` decode steps (contexts seq+1 ... seq+n, from a
    prefilled cache cropped back after each round) another; `time_robust` times them all in rounds. Returns
    (batch, seq) -> prefill_ms / decode_ms (medians; decode per step), their spreads (max - min over the rounds),
    `remeasured` (rounds redone) and `noisy` (still spread over `max_spread` after the retries). `warmup` untimed
    rounds come first (0 when the same shapes have just run, as in `run_sweep` after `point_costs`).
    """
    cost.check_positive(decode_steps=decode_steps, repeats=repeats)
    points = [(int(b), int(s)) for b, s in points]
    checks.non_empty("points", points, "(batch, seq) point")
    vocab = model.config.vocab_size
    dev = next(model.parameters()).device
    fns = {}
    with torch.no_grad():
        for b, s in points:
            cost.check_positive(batch=b, seq=s)
            ids = _random_ids(vocab, b, s, seed).to(dev)
            nxt = _random_ids(vocab, b, decode_steps + 1, seed + 1).to(dev)
            cache = model(input_ids=ids, use_cache=True, logits_to_keep=1).cache    # (B, S) context for decode

            def prefill(ids=ids):
                return model(input_ids=ids, use_cache=True, logits_to_keep=1)

            def decode(cache=cache, nxt=nxt, s=s):
                for i in range(1, decode_steps + 1):
                    model(input_ids=nxt[:, i:i + 1], cache=cache, use_cache=True)
                cache.crop(-decode_steps)                       # back to the prompt for the next round
                return cache

            fns[("prefill", b, s)], fns[("decode", b, s)] = prefill, decode
    res = time_robust(fns, repeats=repeats, warmup=warmup, max_spread=max_spread, retries=retries, device=dev)
    out = {}
    for b, s in points:
        pre, dec = res[("prefill", b, s)], res[("decode", b, s)]
        out[(b, s)] = {
            "prefill_ms": pre["timing"].median_ms, "prefill_spread_ms": pre["timing"].spread_ms,
            "decode_ms": dec["timing"].median_ms / decode_steps,
            "decode_spread_ms": dec["timing"].spread_ms / decode_steps,
            "remeasured": max(pre["remeasured"], dec["remeasured"]),
            "noisy": bool(pre["noisy"] or dec["noisy"]),
        }
    return out


def run_sweep(model, config: SweepConfig, progress: bool = True):
    """Measure every grid point of `config` (cached per machine and per the model's weights); return a DataFrame.

    FLOPs and memory point by point (`point_costs`); times in interleaved rounds over the whole grid, the median
    kept, noisy points flagged and re-measured (`time_points`); `load_avg` is the 1-minute load average after.
    """
    import os

    import pandas as pd
    from .. import progress as bar

    checks.non_empty("config.batch_sizes", config.batch_sizes, "batch size")
    checks.non_empty("config.seq_lens", config.seq_lens, "prompt length")
    for b in config.batch_sizes:
        cost.check_positive(batch_size=b)
    for s in config.seq_lens:
        cost.check_positive(seq_len=s)
    grid = [(b, s) for b in config.batch_sizes for s in config.seq_lens]
    machine = (platform.node(), platform.processor(), torch.get_num_threads(), str(next(model.parameters()).device))
    weights = weights_fingerprint(model)   # the model measured, not config.model (a label the user chose)

    def compute():
        time_points(model, [(1, 8)], decode_steps=2, repeats=1, retries=0)  # warm-up: first calls pay one-off costs
        rows = [point_costs(model, b, s, config.decode_steps, config.seed)
                for b, s in bar(grid, desc="cost sweep: FLOPs, memory", enabled=progress)]
        times = time_points(model, grid, config.decode_steps, config.repeats, config.seed, warmup=0)  # warmed above
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        return pd.DataFrame([{**r, **times[(r["batch"], r["seq"])], "load_avg": load} for r in rows])

    return cached("cost_sweep", (config, machine, weights), compute,
                  code=(point_costs, time_points, time_robust, _random_ids), version=SWEEP_VERSION)


def predict(sweep, batch: int, seq: int, new_tokens: int) -> dict:
    """Predict a generation's cost from a sweep: prefill + new_tokens x measured decode step."""
    cost.check_positive(batch=batch, seq=seq, new_tokens=new_tokens)
    row = sweep[(sweep["batch"] == batch) & (sweep["seq"] == seq)]
    if row.empty:
        raise ValueError(f"(batch={batch}, seq={seq}) is not in the sweep; measured batches "
                         f"{sorted(sweep['batch'].unique())}, lengths {sorted(sweep['seq'].unique())}")
    r = row.iloc[0]
    decode_ms = new_tokens * r["decode_ms"]
    total_ms = r["prefill_ms"] + decode_ms
    return {
        "prefill_ms": float(r["prefill_ms"]), "decode_ms": float(decode_ms), "total_ms": float(total_ms),
        "tokens_per_s": batch * new_tokens / (total_ms / 1e3),
        "gflops": (r["prefill_flops"] + new_tokens * r["decode_flops"]) / 1e9,
        "peak_mb": float(r["peak_mb"]), "work_mb": float(r["work_mb"]), "kv_cache_mb": float(r["kv_mb_per_token"] * (seq + new_tokens)),
    }


def prefill_vs_decode(model, tokens: int = 64, batch: int = 1, repeats: int = 3, seed: int = 0) -> "cost.Ledger":
    """Process the same `tokens` tokens two ways, one forward (prefill) vs one token per step (decode)."""
    cost.check_positive(tokens=tokens, batch=batch, repeats=repeats)
    dev = next(model.parameters()).device
    ids = _random_ids(model.config.vocab_size, batch, tokens, seed).to(dev)  # (B, T)

    def prefill():
        return model(input_ids=ids, use_cache=True)  # logits at every position, as decode computes them

    def decode():
        cache = None
        for i in range(tokens):
            cache = model(input_ids=ids[:, i:i + 1], cache=cache, use_cache=True).cache
        return cache

    ledger = cost.Ledger()
    ledger.measure(f"prefill: 1 forward x {tokens} tok", prefill, repeats=repeats, device=dev,
                   completion_tokens=batch * tokens, calls=1)
    ledger.measure(f"decode: {tokens} forwards x 1 tok", decode, repeats=max(1, repeats // 2), device=dev,
                   completion_tokens=batch * tokens, calls=tokens)
    return ledger


FLOPS_CHECK_CASES = ((1, 32, 0), (4, 128, 0), (2, 1, 128), (4, 1, 256))   # (batch, new tokens, past tokens)


def flops_check(model, cases=FLOPS_CHECK_CASES):
    """Analytic vs measured FLOPs of one forward for each (batch, new tokens, past tokens): a DataFrame."""
    import pandas as pd

    shape = cost.TransformerShape.from_config(model.config)
    dev = next(model.parameters()).device
    rows = []
    with torch.no_grad():
        for b, t, p in cases:
            cost.check_positive(batch=b, new_tokens=t)
            past = model(input_ids=torch.ones(b, p, dtype=torch.long, device=dev)).cache if p else None
            ids = torch.ones(b, t, dtype=torch.long, device=dev)
            measured = cost.measure_flops(lambda ids=ids, past=past: model(input_ids=ids, cache=past))[1]
            analytic = cost.transformer_flops(shape, b, t, past=p)
            rows.append({"batch": b, "new tok": t, "past tok": p, "measured GFLOPs": measured / 1e9,
                         "analytic GFLOPs": analytic / 1e9, "analytic / measured": analytic / measured})
    return pd.DataFrame(rows)


def weight_bytes(model) -> int:
    """Bytes of the model's parameters: what one decode step must read from memory at least once."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


def decode_roofline(sweep, limits: cost.MachineLimits, weights: int):
    """Per grid point of a sweep: measured decode tokens/s against the roofline bound, and the share reached.

    One decode step reads every weight once plus the batch's KV cache (`kv_mb_per_token` x context), and does
    `decode_flops`; the bound is the smaller of bandwidth / bytes and peak FLOP/s / FLOPs (times the batch).
    """
    import pandas as pd

    rows = []
    for r in sweep.itertuples():
        kv_row = r.kv_mb_per_token * 1e6 * (r.seq + 1) / r.batch            # bytes of one row's KV cache
        per_token = r.decode_flops / r.batch
        b = cost.decode_bound_tokens_per_s(limits, weights, per_token, batch=int(r.batch), kv_bytes_per_row=kv_row)
        measured = r.batch / (r.decode_ms / 1e3)
        rows.append({"batch": int(r.batch), "context": int(r.seq), "measured tok/s": measured,
                     "bound tok/s": b["bound_tokens_per_s"], "limited by": b["limited_by"],
                     "share of bound": measured / b["bound_tokens_per_s"], "FLOPs / byte": b["flops_per_byte"],
                     "achieved GFLOP/s": r.decode_flops / (r.decode_ms / 1e3) / 1e9})
    return pd.DataFrame(rows)
