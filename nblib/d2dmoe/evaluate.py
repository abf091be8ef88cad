"""Quality and cost of a converted model under one routing rule: accuracy, experts per token, FFN FLOPs.

FFN FLOPs are counted as the paper's `benchmark_moe` does: per token and layer,
the router plus (executed experts x one expert's FLOPs), relative to the dense
FFN's FLOPs over the same tokens (padding excluded). The official code counts every position of its
fixed-length padded inputs instead (`eval.py::online_evaluate_moe`); `evaluate_classifier` reports that
ratio too (`ffn_flops_ratio_padded`, every position of the batch as run) from the same forward passes.
`MoEFFN.flops` is the formula; a test checks it against `nblib.cost.measure_flops` of the grouped path.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .convert import recording, set_rule
from .data import encode
from .moe import MoEFFN


@dataclass
class RuleResult:
    """One evaluation: the rule, accuracy, FFN FLOPs relative to dense, experts per token (mean, per layer)."""

    rule: str  # 'dense', 'dynk', 'topk', 'oracle', 'oracle_topk' or 'dynk_layer'
    value: float  # tau for dynk / oracle, k for topk / oracle_topk, the target share for dynk_layer, nan for dense
    accuracy: float
    ffn_flops_ratio: float  # relative to dense over the real tokens (padding excluded)
    experts_per_token: list[float]  # mean executed experts per token, per layer
    n_experts: int
    correct: list[bool] = field(default_factory=list, repr=False)
    ffn_flops_ratio_padded: float | None = None  # every position of the batch counted (the official code's way)

    def as_dict(self) -> dict:
        """Plain dict for JSON."""
        d = {"rule": self.rule, "value": self.value, "accuracy": self.accuracy,
             "ffn_flops_ratio": self.ffn_flops_ratio, "experts_per_token": self.experts_per_token,
             "n_experts": self.n_experts, "correct": [int(c) for c in self.correct]}
        if self.ffn_flops_ratio_padded is not None:
            d["ffn_flops_ratio_padded"] = self.ffn_flops_ratio_padded
        return d


def apply_rule(layers: list[MoEFFN], rule: str, value, impl: str = "masked") -> None:
    """Set 'dense' (every expert), 'dynk' / 'oracle' (value = tau) or 'topk' / 'oracle_topk' (value = k) on every
    layer, or 'dynk_layer' (value = one tau per layer: the per-layer extension)."""
    if rule == "dynk_layer":
        taus = list(value)
        if len(taus) != len(layers):
            raise ValueError(f"'dynk_layer' needs one tau per layer ({len(layers)}), got {len(taus)}")
        for m, t in zip(layers, taus, strict=True):
            m.set_rule("dynk", tau=float(t), impl=impl)
    elif rule == "dense":
        set_rule(layers, "all", impl=impl)
    elif rule == "dynk":
        set_rule(layers, "dynk", tau=float(value), impl=impl)
    elif rule in ("topk", "oracle_topk"):
        set_rule(layers, rule, k=int(value), impl=impl)
    elif rule == "oracle":
        set_rule(layers, "oracle", tau=float(value), impl=impl)
    else:
        raise ValueError(f"rule must be 'dense', 'dynk', 'topk', 'oracle', 'oracle_topk' or 'dynk_layer', "
                         f"got {rule!r}")


def usage(layers: list[MoEFFN], keep: torch.Tensor | None = None) -> tuple[list[float], float]:
    """(mean experts per token per layer, FFN FLOPs relative to dense) from what the layers recorded."""
    per, used, dense = [], 0, 0
    for m in layers:
        c = torch.cat(m.counts)
        if keep is not None and keep.numel() == c.numel():
            c = c[keep]
        per.append(float(c.float().mean()))
        used += m.flops(c, c.numel())
        dense += m.dense_flops() * c.numel()
    return per, used / dense


@torch.no_grad()
def evaluate_classifier(model, layers: list[MoEFFN], tokenizer, reviews, rule: str = "dense",
                        value=None, max_len: int = 64, batch: int = 100, impl: str = "masked",
                        padding: str = "longest", label: float | None = None) -> RuleResult:
    """Accuracy and FFN cost of the MiniLM classifier on `reviews` under one rule (`label`: the value to record
    when `value` is not one number, e.g. the target share of 'dynk_layer')."""
    apply_rule(layers, rule, value, impl)
    correct, keeps = [], []
    with recording(layers):
        for i in range(0, len(reviews), batch):
            b = encode(tokenizer, reviews[i:i + batch], max_len, padding=padding)
            pred = model(b["input_ids"], b["attention_mask"]).argmax(-1)
            correct += (pred == b["labels"]).tolist()
            keeps.append(b["attention_mask"].reshape(-1).bool())
        per, ratio = usage(layers, torch.cat(keeps))
        _, padded = usage(layers)
    shown = label if label is not None else (float("nan") if value is None else float(value))
    return RuleResult(rule, float(shown), float(np.mean(correct)), ratio, per, layers[0].n_experts, correct,
                      ffn_flops_ratio_padded=padded)


@torch.no_grad()
def evaluate_taskworld(model, layers: list[MoEFFN], problems, rule: str = "dense", value: float | None = None,
                       batch: int = 256, impl: str = "masked") -> RuleResult:
    """Answer accuracy (greedy solutions) and FFN cost of the task world model under one rule."""
    from ..taskworld import problems as T
    from ..taskworld.generation import solve

    apply_rule(layers, rule, value, impl)
    with recording(layers):
        gens = solve(model, problems, batch)
        per, ratio = usage(layers)
    correct = [T.check_answer(p, g.text) for p, g in zip(problems, gens, strict=True)]
    return RuleResult(rule, float("nan") if value is None else float(value), float(np.mean(correct)), ratio,
                      per, layers[0].n_experts, correct)


@torch.no_grad()
def token_experts(model, layers: list[MoEFFN], tokenizer, text: str, tau: float, max_len: int = 64):
    """For one review: its word pieces and the experts each one ran at tau, (tokens, counts (layers, T))."""
    apply_rule(layers, "dynk", tau)
    b = encode(tokenizer, [text], max_len)
    with recording(layers):
        model(b["input_ids"], b["attention_mask"])
    counts = np.stack([torch.cat(m.counts).numpy() for m in layers])
    return tokenizer.convert_ids_to_tokens(b["input_ids"][0]), counts


def bootstrap_diff(a: list[bool], b: list[bool], n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % paired-bootstrap interval of accuracy(a) - accuracy(b), in points."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), (n, len(a)))
    d = (a[idx] - b[idx]).mean(1) * 100
    return float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))
