"""Wall-clock latency of ONE request (batch 1) through the converted MiniLM: dense vs MoE (compiled kernel).

- `request_inputs(texts, n)`: real multiemo reviews as requests of exactly n real tokens (consecutive reviews
  joined when one is shorter, then truncated; no padding, so every position is a real token).
- `request_latency(model, layers, texts, tau=... | k=...)`: per token count, the whole model forward and the
  FFN layers alone, dense (`MoEFFN.dense_forward`: two plain torch matmuls per layer, rule 'all') vs MoE
  (`impl="kernel"`, the router inside the call), optionally the original unconverted model, interleaved A/B
  on 2 threads, median and spread, with the FFN FLOPs ratio of the same runs.
- `latency_sweep(...)`: that over taus (dynamic-k) and ks (top-k): measured latency vs FFN FLOPs.
- `machine()`: CPU model, torch's BLAS, threads, load average (stored beside every measurement).
- `at_tau(result, tau)` / `summary(...)`: the point at the tau within 1 point of dense accuracy.
- `load_record()` / `panel_points(record, tokens)`: the shipped measurement, and its points as the panel reads them.
Everything returned is JSON-ready (plain floats, ints, lists, dicts).
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from .. import checks
from . import kernel
from .convert import recording, set_rule
from .data import DATA_DIR

N_TOKENS = (32, 64, 128)
TAUS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5)
INPUT_NOTE = ("real multiemo test reviews, each request exactly n real tokens ([CLS] ... [SEP], consecutive reviews "
              "joined when shorter, then truncated): no padding")


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo, else platform.processor())."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def torch_blas() -> str:
    """Which BLAS torch was built with (from torch.__config__.show(): MKL, OpenBLAS, ...)."""
    cfg = torch.__config__.show()
    for line in cfg.splitlines():
        if "BLAS_INFO=" in line:
            return line.split("BLAS_INFO=", 1)[1].split(",")[0].strip()
    if "MKL" in cfg:
        return "mkl"
    return "OpenBLAS" if "OpenBLAS" in cfg else "unknown"


def machine(threads: int | None = None) -> dict:
    """CPU model, cores, torch threads, torch's BLAS, the kernel status and the load average now."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "threads": threads or torch.get_num_threads(),
            "torch": torch.__version__, "blas": torch_blas(), "kernel": kernel.status(),
            "loadavg": [round(v, 2) for v in os.getloadavg()]}


def request_inputs(texts, n: int, count: int | None = None) -> list[dict[str, torch.Tensor]]:
    """Requests of exactly n real tokens from texts (reviews or strings), joined in order when too short."""
    from .models import tokenizer

    n = checks.whole("n", n, low=3, high=512)
    tok = tokenizer()
    strs = [getattr(t, "text", t) for t in texts]
    if not strs:
        raise checks.BadArgument("texts is empty: give a few reviews, e.g. d2dmoe.load_multiemo('test', 20)")
    out, i = [], 0
    want = count or len(strs)
    for _ in range(want * 4):
        if len(out) >= want:
            break
        ids: list[int] = []
        while len(ids) < n - 2:
            ids += tok(strs[i % len(strs)], add_special_tokens=False)["input_ids"]
            i += 1
        ids = [tok.cls_token_id] + ids[:n - 2] + [tok.sep_token_id]
        t = torch.tensor([ids])
        out.append({"input_ids": t, "attention_mask": torch.ones_like(t)})
    return out


@contextmanager
def threads(n: int):
    """torch's intra-op threads set to n within the block."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _stats(ms: list[float]) -> dict:
    """Median, quartiles and range of a list of milliseconds."""
    q = statistics.quantiles(ms, n=4) if len(ms) > 1 else [ms[0]] * 3
    return {"median": statistics.median(ms), "q1": q[0], "q3": q[2], "min": min(ms), "max": max(ms), "n": len(ms)}


def _ratio(num: list[float], den: list[float]) -> dict:
    """Median ratio of two paired timing lists, with the spread of the per-repeat ratios."""
    per = [a / b for a, b in zip(num, den, strict=True)]
    q = statistics.quantiles(per, n=4) if len(per) > 1 else [per[0]] * 3
    return {"ratio": statistics.median(num) / statistics.median(den), "per_repeat_median": statistics.median(per),
            "q1": q[0], "q3": q[2]}


def _ms(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


@torch.no_grad()
def request_latency(model, layers, texts, tau: float | None = None, k: int | None = None, n_tokens=N_TOKENS,
                    repeats: int = 20, warmup: int = 3, n_threads: int = 2, base_model=None) -> dict:
    """One request at a time: whole forward and FFNs alone, dense vs MoE kernel (router in), interleaved, median.

    tau (dynamic-k) or k (top-k), exactly one. base_model: the unconverted model, timed too when given.
    """
    if (tau is None) == (k is None):
        raise checks.BadArgument("give exactly one of tau (dynamic-k) or k (static top-k)")
    rule = ("dynk", {"tau": tau}) if tau is not None else ("topk", {"k": k})
    repeats = checks.whole("repeats", repeats, low=1)
    out = {"rule": rule[0], "value": tau if tau is not None else k, "n_experts": layers[0].n_experts,
           "expert_size": layers[0].size, "threads": n_threads, "kernel": kernel.status(layers[0]), "inputs": INPUT_NOTE,
           "loadavg_before": [round(v, 2) for v in os.getloadavg()], "by_tokens": []}

    def use_dense():
        set_rule(layers, "all", impl="kernel")

    def use_moe():
        set_rule(layers, rule[0], **rule[1], impl="kernel")

    with threads(n_threads):
        for n in n_tokens:
            reqs = request_inputs(texts, n)
            use_dense()
            with recording(layers, capture=True):        # the FFN inputs of each request (dense run)
                for b in reqs:
                    model(**b)
            xs = [[m.inputs[i] for m in layers] for i in range(len(reqs))]
            use_moe()
            with recording(layers):                       # experts per token and FLOPs of the same MoE runs
                for b in reqs:
                    model(**b)
            executed = sum(int(c.sum()) for m in layers for c in m.counts)
            tokens = sum(int(c.numel()) for c in layers[0].counts)
            moe_flops = sum(m.flops(c, int(c.numel())) for m in layers for c in m.counts)
            dense_flops = sum(m.dense_flops() * int(c.numel()) for m in layers for c in m.counts)

            def ffn_dense(x):
                for m, xi in zip(layers, x, strict=True):
                    m.dense_forward(xi)

            def ffn_moe(x):
                for m, xi in zip(layers, x, strict=True):
                    kernel.layer_forward(m, xi)

            t = {"dense": [], "moe": [], "base": [], "ffn_dense": [], "ffn_moe": []}
            for r in range(warmup + repeats):
                b, x = reqs[r % len(reqs)], xs[r % len(reqs)]
                runs = [("dense", use_dense, lambda: model(**b)), ("moe", use_moe, lambda: model(**b)),
                        ("ffn_dense", use_dense, lambda: ffn_dense(x)), ("ffn_moe", use_moe, lambda: ffn_moe(x))]
                if base_model is not None:
                    runs.append(("base", use_dense, lambda: base_model(**b)))
                if r % 2:
                    runs.reverse()                         # alternate the order: neither side always goes first
                for name, prepare, fn in runs:
                    prepare()                              # the rule is set outside the timed call
                    ms = _ms(fn)
                    if r >= warmup:
                        t[name].append(ms)
            row = {"tokens": n, "requests": len(reqs), "ffn_flops_ratio": moe_flops / dense_flops,
                   "experts_per_token": executed / tokens / len(layers),
                   "expert_share": executed / (tokens * len(layers) * layers[0].n_experts),
                   "request_ms": {"dense": _stats(t["dense"]), "moe": _stats(t["moe"])},
                   "ffn_ms": {"dense": _stats(t["ffn_dense"]), "moe": _stats(t["ffn_moe"])},
                   "request_ratio": _ratio(t["moe"], t["dense"]), "ffn_ratio": _ratio(t["ffn_moe"], t["ffn_dense"]),
                   "ffn_share_of_dense_request": statistics.median(t["ffn_dense"]) / statistics.median(t["dense"])}
            if base_model is not None:
                row["request_ms"]["original"] = _stats(t["base"])
                row["request_ratio_vs_original"] = _ratio(t["moe"], t["base"])
            out["by_tokens"].append(row)
    use_moe()
    out["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    return out


def latency_sweep(model, layers, texts, taus=TAUS, ks=(), n_tokens=N_TOKENS, repeats: int = 20,
                  base_model=None, progress: bool = True) -> dict:
    """request_latency over taus (dynamic-k) and ks (top-k): measured latency and FFN time vs FFN FLOPs."""
    from tqdm.auto import tqdm

    jobs = [("dynk", t) for t in taus] + [("topk", k) for k in ks]
    res = {"machine": machine(2), "n_experts": layers[0].n_experts, "expert_size": layers[0].size,
           "inputs": INPUT_NOTE, "dynk": [], "topk": []}
    for mode, v in tqdm(jobs, disable=not progress, desc=f"latency e{layers[0].n_experts}"):
        kw = {"tau": v} if mode == "dynk" else {"k": v}
        res[mode].append(request_latency(model, layers, texts, n_tokens=n_tokens, repeats=repeats,
                                         base_model=base_model if (mode, v) == jobs[0] else None, **kw))
    res["machine_after"] = machine(2)
    return res


def at_value(points: list[dict], value) -> dict | None:
    """The sweep point whose rule value (tau or k) equals `value`, or None."""
    for p in points:
        if abs(float(p["value"]) - float(value)) < 1e-9:
            return p
    return None


def table(sweep: dict) -> list[dict]:
    """Flat rows (rule, value, tokens, FLOPs ratio, FFN time ratio, request latency ratio, medians in ms)."""
    rows = []
    for mode in ("dynk", "topk"):
        for p in sweep.get(mode, []):
            for r in p["by_tokens"]:
                rows.append({"rule": mode, "value": p["value"], "tokens": r["tokens"],
                             "ffn_flops_ratio": r["ffn_flops_ratio"], "ffn_time_ratio": r["ffn_ratio"]["ratio"],
                             "request_latency_ratio": r["request_ratio"]["ratio"],
                             "dense_request_ms": r["request_ms"]["dense"]["median"],
                             "moe_request_ms": r["request_ms"]["moe"]["median"],
                             "dense_ffn_ms": r["ffn_ms"]["dense"]["median"], "moe_ffn_ms": r["ffn_ms"]["moe"]["median"]})
    return rows


def summary(sweep: dict, tau_1pt: float | None, tokens: int = 64) -> dict:
    """The goal check at the 1-point tau for one token count: FFN time and request latency ratios vs the goals."""
    p = at_value(sweep["dynk"], tau_1pt) if tau_1pt is not None else None
    r = next((x for x in p["by_tokens"] if x["tokens"] == tokens), None) if p else None
    if r is None:
        return {"tau_1pt": tau_1pt, "tokens": tokens, "measured": False}
    ffn, req = r["ffn_ratio"]["ratio"], r["request_ratio"]["ratio"]
    return {"tau_1pt": tau_1pt, "tokens": tokens, "measured": True, "n_experts": sweep["n_experts"],
            "expert_size": sweep["expert_size"], "ffn_flops_ratio": r["ffn_flops_ratio"], "ffn_time_ratio": ffn,
            "request_latency_ratio": req, "ffn_goal_met": ffn <= 0.6, "request_goal_met": req <= 0.85}


RECORD = DATA_DIR / "latency_minilm.json"


def load_record(path=RECORD) -> dict:
    """The shipped latency measurement (data/d2dmoe/latency_minilm.json): sweeps per expert count and summary."""
    from ..cache import read_json

    return read_json(Path(path), rebuild="python scripts/d2dmoe_latency.py")


def panel_points(record: dict, tokens: int = 64) -> dict[int, list[dict]]:
    """Per expert size, the dynamic-k points at one request length as the panel reads them:
    {size: [{tau, ffn_flops_ratio, ffn_time_ratio, request_ratio}]}."""
    out = {}
    for s in record["sweeps"]:
        pts = []
        for p in s["dynk"]:
            r = next((x for x in p["by_tokens"] if x["tokens"] == tokens), None)
            if r is not None:
                pts.append({"tau": float(p["value"]), "ffn_flops_ratio": r["ffn_flops_ratio"],
                            "ffn_time_ratio": r["ffn_ratio"]["ratio"], "request_ratio": r["request_ratio"]["ratio"]})
        if pts:
            out[int(s["expert_size"])] = pts
    return out
