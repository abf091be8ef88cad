"""Side-by-side measurements shared by notebook 02 and benchmarks/d2dmoe.py.

- `sweep(model, n_experts, taus, ks)`: dense, dynamic-k at each tau and static top-k at each k on the
  same test items, same converted model (accuracy, FFN FLOPs relative to dense, experts per token).
- `saved_at(points, dense_accuracy, tol)`: the largest FFN-FLOPs saving whose accuracy is within `tol`
  points of dense; `topk_at_equal_flops`: top-k accuracy interpolated at dynamic-k's FLOPs.
- `ffn_wall_time(layers, inputs, tau)`: the FFN layers timed dense vs grouped MoE (router included),
  interleaved, median and spread.
"""
from __future__ import annotations

import os
import statistics
import time

import numpy as np
import torch

from .evaluate import apply_rule, evaluate_classifier, evaluate_taskworld
from .models import load_moe, tokenizer

TAUS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0)
K_FRACTIONS = (1 / 16, 1 / 8, 1 / 4, 3 / 8, 1 / 2, 3 / 4)


def ks_for(n_experts: int, fractions=K_FRACTIONS) -> list[int]:
    """Static top-k values: the given fractions of the expert count (at least 1, no repeats)."""
    return sorted({max(1, round(f * n_experts)) for f in fractions})


def _pack(r) -> dict:
    d = r.as_dict()
    d["correct"] = "".join(str(c) for c in d["correct"])  # a bit string: compact JSON
    return d


def test_items(model_name: str, n: int):
    """The evaluation items: multiemo test reviews, or task-world test problems."""
    if model_name == "minilm":
        from .data import load_multiemo

        return load_multiemo("test", n)
    from ..taskworld import problems as T
    from .models import taskworld_task

    return T.problems("test", n, seed=0, cfg=taskworld_task())


def evaluator(model_name: str, model, layers, items, max_len: int = 64):
    """A function (rule, value) -> RuleResult for this model and these items."""
    if model_name == "minilm":
        tok = tokenizer()
        return lambda rule, value=None: evaluate_classifier(model, layers, tok, items, rule, value, max_len)
    return lambda rule, value=None: evaluate_taskworld(model, layers, items, rule, value)


def sweep(model_name: str, n_experts: int, n_items: int, taus=TAUS, ks=None, progress: bool = True) -> dict:
    """Dense, dynamic-k over `taus` and static top-k over `ks` on the same items; JSON-ready dict."""
    from .. import progress as bar

    model, layers = load_moe(model_name, n_experts)
    items = test_items(model_name, n_items)
    ev = evaluator(model_name, model, layers, items)
    ks = list(ks) if ks is not None else ks_for(n_experts)
    jobs = [("dense", None)] + [("dynk", t) for t in taus] + [("topk", k) for k in ks]
    out = {"model": model_name, "n_experts": n_experts, "expert_size": layers[0].size, "n_items": len(items),
           "dynk": [], "topk": []}
    t0 = time.perf_counter()
    for rule, value in bar(jobs, desc=f"{model_name} E={n_experts}", enabled=progress):
        r = ev(rule, value)
        if rule == "dense":
            out["dense"] = _pack(r)
        else:
            out[rule].append(_pack(r))
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    out["loadavg"] = os.getloadavg()
    return out


def saved_at(points: list[dict], dense_accuracy: float, tol: float = 1.0) -> tuple[float, dict | None]:
    """(largest 1 - FFN FLOPs ratio with accuracy >= dense - tol points, that point) over the points."""
    ok = [p for p in points if p["accuracy"] * 100 >= dense_accuracy * 100 - tol - 1e-9]
    if not ok:
        return 0.0, None
    best = min(ok, key=lambda p: p["ffn_flops_ratio"])
    return max(0.0, 1 - best["ffn_flops_ratio"]), best


def topk_at_equal_flops(dynk: list[dict], topk: list[dict]) -> list[dict]:
    """For each dynamic-k point inside top-k's FLOPs range: top-k accuracy interpolated at the same FLOPs."""
    tk = sorted(topk, key=lambda p: p["ffn_flops_ratio"])
    xs = [p["ffn_flops_ratio"] for p in tk]
    ys = [p["accuracy"] for p in tk]
    out = []
    for p in dynk:
        if xs and xs[0] <= p["ffn_flops_ratio"] <= xs[-1]:
            out.append({"tau": p["value"], "ffn_flops_ratio": p["ffn_flops_ratio"], "dynk_accuracy": p["accuracy"],
                        "topk_accuracy": float(np.interp(p["ffn_flops_ratio"], xs, ys))})
    return out


@torch.no_grad()
def capture_inputs(model_name: str, model, layers, items, rule: str = "dense", value=None,
                   batch: int = 100) -> list[torch.Tensor]:
    """Each MoE layer's real inputs (N, d) on `items` under a rule (one forward; every position, padding included)."""
    from .convert import recording
    from .data import encode

    apply_rule(layers, rule, value)
    with recording(layers, capture=True):
        if model_name == "minilm":
            tok = tokenizer()
            for i in range(0, len(items), batch):
                b = encode(tok, items[i:i + batch], 64)
                model(b["input_ids"], b["attention_mask"])
        else:
            from ..taskworld.training import collate

            ids, _ = collate(items)
            model(input_ids=ids, attention_mask=(ids != 0).long())
        per = [torch.cat(m.inputs) for m in layers]
    return per


@torch.no_grad()
def ffn_wall_time(layers, inputs: list[torch.Tensor], tau: float | None = None, k: int | None = None,
                  repeats: int = 7, warmup: int = 2) -> dict:
    """Wall time of all FFN layers on their inputs: dense vs grouped MoE (router included), interleaved A/B."""
    if (tau is None) == (k is None):
        raise ValueError("give exactly one of tau (dynamic-k) or k (static top-k)")
    for m in layers:
        if tau is not None:
            m.set_rule("dynk", tau=tau, impl="grouped")
        else:
            m.set_rule("topk", k=k, impl="grouped")

    def dense():
        for m, x in zip(layers, inputs, strict=True):
            m.dense_forward(x)

    def moe():
        for m, x in zip(layers, inputs, strict=True):
            m(x)

    for _ in range(warmup):
        dense()
        moe()
    td, tm = [], []
    for _ in range(repeats):
        for fn, acc in ((dense, td), (moe, tm)):
            t0 = time.perf_counter()
            fn()
            acc.append((time.perf_counter() - t0) * 1e3)
    ratios = [b / a for a, b in zip(td, tm, strict=True)]
    return {"dense_ms": statistics.median(td), "dense_ms_range": (min(td), max(td)),
            "moe_ms": statistics.median(tm), "moe_ms_range": (min(tm), max(tm)),
            "ratio": statistics.median(tm) / statistics.median(td), "ratio_range": (min(ratios), max(ratios)),
            "tokens": int(inputs[0].shape[0]), "threads": torch.get_num_threads(), "loadavg": os.getloadavg()}
