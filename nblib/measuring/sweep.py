"""Precomputed cost sweeps: measure once over a grid, then sliders only index the table."""
from __future__ import annotations

import platform
import time
from dataclasses import dataclass

import numpy as np
import torch

from .. import checks, cost
from ..cache import cached, weights_fingerprint


SWEEP_VERSION = 3  # bump when measure_point changes what or how it measures


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
    """Measure one (batch, prompt length): prefill and per-token decode time, FLOPs, peak memory."""
    cost.check_positive(batch=batch, seq=seq, decode_steps=decode_steps, repeats=repeats)
    shape = cost.TransformerShape.from_config(model.config)
    dev = next(model.parameters()).device
    ids = _random_ids(shape.vocab, batch, seq, seed).to(dev)
    nxt = _random_ids(shape.vocab, batch, decode_steps + 1, seed + 1).to(dev)

    def prefill():
        return model(input_ids=ids, use_cache=True, logits_to_keep=1)

    out, prefill_flops = cost.measure_flops(prefill)        # also the warm-up of the timed calls
    t_prefill = cost.time_fn(prefill, warmup=0, repeats=repeats, device=dev)
    cache = out.cache
    _, decode_flops = cost.measure_flops(lambda: model(input_ids=nxt[:, :1], cache=cache, use_cache=True))
    times = []                                              # decode steps at context seq+1 ... seq+n
    with torch.no_grad():
        for i in range(1, decode_steps + 1):
            t0 = time.perf_counter()
            cache = model(input_ids=nxt[:, i:i + 1], cache=cache, use_cache=True).cache
            cost.sync_device(dev)
            times.append((time.perf_counter() - t0) * 1e3)
    _, work_mb, peak_mb = cost.peak_memory(prefill, device=dev)  # RSS (CPU) / allocator (CUDA)
    return {
        "batch": batch, "seq": seq,
        "prefill_ms": t_prefill.median_ms, "prefill_spread_ms": t_prefill.spread_ms,
        "decode_ms": float(np.median(times)), "decode_spread_ms": float(np.max(times) - np.min(times)),
        "prefill_flops": prefill_flops,
        "prefill_flops_analytic": cost.transformer_flops(shape, batch, seq, logits_positions=1),
        "decode_flops": decode_flops,
        "decode_flops_analytic": cost.transformer_flops(shape, batch, 1, past=seq),
        "work_mb": work_mb,          # peak above the start: activations + KV cache of the prefill
        "peak_mb": peak_mb,          # process peak, weights included
        "kv_mb_per_token": kv_cache_mb(shape, batch, 1),  # whole batch, one more position
    }


def run_sweep(model, config: SweepConfig, progress: bool = True):
    """Measure every grid point of `config` (cached per machine and per the model's weights); return a DataFrame."""
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
        measure_point(model, 1, 8, decode_steps=2, repeats=1)  # warm-up: first calls pay one-off costs
        rows = []
        for b, s in bar(grid, desc="cost sweep", enabled=progress):
            rows.append(measure_point(model, b, s, config.decode_steps, config.repeats, config.seed))
        return pd.DataFrame(rows)

    return cached("cost_sweep", (config, machine, weights), compute, code=(measure_point, _random_ids),
                  version=SWEEP_VERSION)


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
