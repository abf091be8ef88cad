"""A fair dynamic-k vs static top-k comparison (notebook 02, issue 28).

Dynamic-k (run expert e when g_e >= tau * max g) trails static top-k on MiniLM multiemo. Before blaming the
rule, four things have to be separated, and each function here isolates one:

- **the router or the rule?** `fair_sweep` runs both rules with the trained routers *and* with the experts'
  true output norms (`oracle` / `oracle_topk`: a perfect, free router). If the oracles tie, no router can
  make dynamic-k win on this task and model.
- **the accounting?** every point carries FFN FLOPs over the real tokens (ours) and over every position of
  the fixed-length padded input (the official code's: `ffn_flops_ratio_padded`, `padding="max_length"`).
- **one global tau?** `per_layer_taus` (our extension, labelled so) picks one tau per layer so every layer
  runs the same share of its experts; `fair_sweep` evaluates it as rule 'dynk_layer'.
- **the premise?** `activity` measures, per layer, how many experts have any non-zero output per token, and
  how much that count varies from token to token (the paper's argument for an adaptive k is that variance).

`gap_at_equal_flops` and `paired_nearest` turn a sweep into the verdict: mean accuracy difference at equal
FLOPs (interpolated), and paired-bootstrap intervals on the per-item results at the nearest FLOPs.
"""
from __future__ import annotations

import os
import time

import numpy as np
import torch

from .evaluate import bootstrap_diff, evaluate_classifier
from .moe import MoEFFN, dynamic_k_mask

TAUS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.85, 1.0)
K_FRACTIONS = (1 / 24, 1 / 12, 1 / 8, 1 / 6, 1 / 4, 1 / 3, 1 / 2, 2 / 3)
SHARES = (0.1, 0.15, 0.2, 0.3, 0.4, 0.6)   # target shares of experts per layer for 'dynk_layer'
RULES = ("dynk", "topk", "oracle", "oracle_topk", "dynk_layer")
LABELS = {"dynk": "dynamic-k (router)", "topk": "top-k (router)", "oracle": "dynamic-k (true norms)",
          "oracle_topk": "top-k (true norms)", "dynk_layer": "dynamic-k, tau per layer (extension)"}


def ks_for(n_experts: int, fractions=K_FRACTIONS) -> list[int]:
    """Static top-k values at the given fractions of the expert count (at least 1, no repeats)."""
    return sorted({max(1, round(f * n_experts)) for f in fractions})


@torch.no_grad()
def activity(layers: list[MoEFFN], inputs: list[torch.Tensor]) -> list[dict]:
    """Per layer: experts with a non-zero true output per token (mean, coefficient of variation, p10/p90)."""
    out = []
    for m, x in zip(layers, inputs, strict=True):
        n = (m.expert_norms(x) > 0).sum(-1).float()
        mean = float(n.mean())
        out.append({"mean": mean, "cv": float(n.std() / mean) if mean else 0.0,
                    "p10": float(n.quantile(0.1)), "p90": float(n.quantile(0.9)), "n_experts": m.n_experts})
    return out


@torch.no_grad()
def per_layer_taus(layers: list[MoEFFN], inputs: list[torch.Tensor], share: float, iters: int = 30) -> list[float]:
    """One tau per layer such that the router's dynamic-k runs `share` of that layer's experts on `inputs`."""
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share!r}")
    taus = []
    for m, x in zip(layers, inputs, strict=True):
        pred = m.router(x)
        lo, hi = 0.0, 1.0   # the share falls as tau rises
        for _ in range(iters):
            mid = (lo + hi) / 2
            if dynamic_k_mask(pred, mid).float().mean() > share:
                lo = mid
            else:
                hi = mid
        taus.append(round(hi, 6))
    return taus


def _pack(r) -> dict:
    d = r.as_dict()
    d["correct"] = "".join(str(c) for c in d["correct"])
    return d


def fair_sweep(model, layers: list[MoEFFN], tokenizer, reviews, calib_inputs: list[torch.Tensor] | None = None,
               taus=TAUS, ks=None, shares=SHARES, max_len: int = 64, progress: bool = True,
               rules=RULES) -> dict:
    """Dense and each of `rules` on the same reviews, padded to `max_len` so both FLOPs counts come from one
    run; JSON-ready. `calib_inputs` (FFN inputs of training text) calibrate 'dynk_layer' and `activity`."""
    from .. import progress as bar

    E = layers[0].n_experts
    ks = list(ks) if ks is not None else ks_for(E)
    unknown = set(rules) - set(RULES)
    if unknown:
        raise ValueError(f"unknown rules {sorted(unknown)}; choose from {RULES}")
    jobs = [("dense", None, None)]
    for rule in ("dynk", "topk", "oracle", "oracle_topk"):
        if rule in rules:
            jobs += [(rule, v, None) for v in (taus if rule in ("dynk", "oracle") else ks)]
    out = {"n_experts": E, "expert_size": layers[0].size, "n_items": len(reviews), "max_len": max_len,
           "padding": "max_length", **{r: [] for r in RULES}}
    if calib_inputs is not None and "dynk_layer" in rules:
        jobs += [("dynk_layer", per_layer_taus(layers, calib_inputs, s), s) for s in shares]
    if calib_inputs is not None:
        out["activity"] = activity(layers, [x[:4000] for x in calib_inputs])
    t0 = time.perf_counter()
    for rule, value, label in bar(jobs, desc=f"fair sweep E={E}", enabled=progress):
        r = evaluate_classifier(model, layers, tokenizer, reviews, rule, value, max_len, padding="max_length",
                                label=label)
        d = _pack(r)
        if rule == "dynk_layer":
            d["taus"] = list(value)
        if rule == "dense":
            out["dense"] = d
        else:
            out[rule].append(d)
    mask = [encode_mask(tokenizer, reviews[i:i + 100], max_len) for i in range(0, len(reviews), 100)]
    out["real_token_share"] = float(torch.cat(mask).float().mean())
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    out["loadavg"] = os.getloadavg()
    return out


def encode_mask(tokenizer, reviews, max_len: int) -> torch.Tensor:
    """The flat attention mask of reviews padded to `max_len` (1 = a real word piece)."""
    from .data import encode

    return encode(tokenizer, reviews, max_len, padding="max_length")["attention_mask"].reshape(-1)


def flops(p: dict, padded: bool) -> float:
    """A point's FFN FLOPs ratio: over every padded position (the official code's count) or real tokens only."""
    return p["ffn_flops_ratio_padded"] if padded else p["ffn_flops_ratio"]


def gap_at_equal_flops(a: list[dict], b: list[dict], padded: bool = False) -> dict:
    """Accuracy of a's points minus b's accuracy interpolated at the same FFN FLOPs, in points, where b's
    FLOPs range covers a's point: {'mean', 'points': [(flops, a acc, b acc, diff)], 'n'} (mean None if none)."""
    bs = sorted(b, key=lambda p: flops(p, padded))
    xs = [flops(p, padded) for p in bs]
    ys = [p["accuracy"] for p in bs]
    pts = []
    for p in a:
        x = flops(p, padded)
        if xs and xs[0] <= x <= xs[-1] and x < 1.0:
            y = float(np.interp(x, xs, ys))
            pts.append((x, p["accuracy"], y, (p["accuracy"] - y) * 100))
    return {"mean": float(np.mean([d for *_, d in pts])) if pts else None, "points": pts, "n": len(pts)}


def paired_nearest(a: list[dict], b: list[dict], padded: bool = False, max_gap: float = 0.05) -> list[dict]:
    """For each point of a: the point of b nearest in FFN FLOPs (within `max_gap`), the accuracy difference in
    points and its 95 % paired-bootstrap interval over the same items."""
    out = []
    for p in a:
        x = flops(p, padded)
        q = min(b, key=lambda q: abs(flops(q, padded) - x), default=None)
        if q is None or abs(flops(q, padded) - x) > max_gap or x >= 1.0:
            continue
        ca, cb = [c == "1" for c in p["correct"]], [c == "1" for c in q["correct"]]
        lo, hi = bootstrap_diff(ca, cb)
        out.append({"a_value": p["value"], "b_value": q["value"], "a_flops": x, "b_flops": flops(q, padded),
                    "diff_pts": (p["accuracy"] - q["accuracy"]) * 100, "ci95": (lo, hi)})
    return out


def verdict(s: dict, tol: float = 1.0) -> dict:
    """The comparison in numbers: dynamic-k minus top-k at equal FLOPs (router and oracle, padding counted and
    not), each rule's FFN FLOPs saved within `tol` points of dense, and the paired intervals."""
    from .bench import saved_at

    dense = s["dense"]["accuracy"]
    out = {"dense_accuracy": dense, "n_items": s["n_items"], "n_experts": s["n_experts"],
           "expert_size": s["expert_size"], "real_token_share": s.get("real_token_share")}
    for name, a, b in (("router", "dynk", "topk"), ("oracle", "oracle", "oracle_topk"),
                       ("per_layer_vs_topk", "dynk_layer", "topk")):
        for padded in (False, True):
            key = f"{name}_{'padded' if padded else 'unpadded'}"
            out[f"dynk_minus_topk_{key}"] = gap_at_equal_flops(s[a], s[b], padded)["mean"] if s[a] else None
        out[f"paired_{name}"] = paired_nearest(s[a], s[b]) if s[a] else []
    for rule in RULES:
        if s[rule]:
            saved, best = saved_at(s[rule], dense, tol)
            out[f"saved_{rule}"] = saved
            out[f"best_{rule}"] = None if best is None else best["value"]
    return out
