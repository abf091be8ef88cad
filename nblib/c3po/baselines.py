"""Baselines on the same traces: each single model, self-consistency, a labelled FrugalGPT-style cascade, a fixed vote cascade.

- single model, one greedy answer (the cheapest way to ask it once), and its self-consistency (SC@K,
  the majority of the same K samples C3PO sees; SC@K on the MPM = "self-consistency on the large model");
- FrugalGPT-style: per model a scorer P(answer correct | features) fitted WITH LABELS (logistic
  regression on vote share, runner-up share, sample length and query length; the paper's code trains a
  DistilBERT scorer), and per-stage score thresholds chosen with labels to maximise accuracy at a mean
  cost budget (FrugalGPT's own constraint: average cost, not a tail probability);
- vote cascade with fixed thresholds (MoT-style): the same vote share rule as C3PO, thresholds set by
  hand, no data used.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .cascade import SKIP, configs, run_configs
from .traces import CascadeTraces

FRUGAL_GRID = tuple(np.round(np.linspace(0, 1, 11), 2)) + (SKIP,)


def single_models(traces: CascadeTraces, idx=None) -> list[dict]:
    """Accuracy and mean cost of each model alone: one greedy answer (when traced) and SC@K (majority of K)."""
    idx = np.arange(traces.n_queries) if idx is None else np.asarray(idx)
    gold = traces.require_gold()[idx]
    rows = []
    for m, name in enumerate(traces.models):
        if traces.greedy is not None:
            rows.append({"method": f"{name} (greedy, 1 sample)", "kind": "single", "model": name,
                         "accuracy": float((traces.greedy[m, idx] == gold).mean()),
                         "mean_cost": float(traces.greedy_cost[m, idx].mean())})
        sc = "self-consistency" if m == traces.n_models - 1 else "SC"
        rows.append({"method": f"{name} {sc}@{traces.k}", "kind": "sc", "model": name,
                     "accuracy": float((traces.answer[m, idx] == gold).mean()),
                     "mean_cost": float(traces.cost[m, idx].mean())})
    return rows


def fixed_vote(traces: CascadeTraces, threshold: float = 0.8, idx=None) -> dict:
    """The vote cascade with the same fixed threshold on every model but the MPM (no data used)."""
    idx = np.arange(traces.n_queries) if idx is None else np.asarray(idx)
    tau = np.array([threshold] * (traces.n_models - 1) + [0.0])
    _, ans, paid = run_configs(traces.share[:, idx], traces.answer[:, idx], traces.cost[:, idx], tau[None])
    return {"method": f"vote cascade (fixed tau = {threshold:g})", "kind": "fixed", "tau": tau,
            "accuracy": float((ans[0] == traces.require_gold()[idx]).mean()), "mean_cost": float(paid[0].mean())}


def features(traces: CascadeTraces, m: int) -> np.ndarray:
    """(Q, 4) scorer features of model m's answers: vote share, runner-up share, tokens per sample, log query length."""
    second = traces.runner_up[m] if traces.runner_up is not None else np.zeros(traces.n_queries)
    qlen = (np.log1p([len(q) for q in traces.queries]) if traces.queries is not None
            else np.zeros(traces.n_queries))
    return np.stack([traces.share[m], second, traces.tokens[m] / traces.k, qlen], 1).astype(float)


class ConstantScorer:
    """A scorer for a model whose training answers were all right or all wrong."""

    def __init__(self, p: float):
        self.p = p

    def predict_proba(self, x):
        """(n, 2): P(wrong), P(right) = the constant."""
        return np.tile([1 - self.p, self.p], (len(x), 1))


@dataclass
class FrugalGPT:
    """A FrugalGPT-style cascade fitted with labels: per-model correctness scorers and score thresholds."""

    scorers: list
    taus: np.ndarray           # (T, M) candidate score thresholds
    train_acc: np.ndarray      # (T,) labelled accuracy on the training queries
    train_cost: np.ndarray     # (T,) mean cost on them

    def scores(self, traces: CascadeTraces) -> np.ndarray:
        """(M, Q) each model's predicted probability that its answer is right (the MPM's: 1)."""
        s = np.ones((traces.n_models, traces.n_queries))
        for m, sc in enumerate(self.scorers):
            s[m] = sc.predict_proba(features(traces, m))[:, 1]
        return s

    def pick(self, mean_budget: float) -> int:
        """The candidate of best training accuracy whose training mean cost is within the budget."""
        ok = self.train_cost <= mean_budget
        if not ok.any():
            return int(self.train_cost.argmin())
        return int(np.where(ok, self.train_acc, -1).argmax())

    def run(self, traces: CascadeTraces, t: int, idx=None) -> dict:
        """Accuracy and mean cost of candidate t on the queries idx."""
        idx = np.arange(traces.n_queries) if idx is None else np.asarray(idx)
        sc = self.scores(traces)[:, idx]
        exit_, ans, paid = run_configs(sc, traces.answer[:, idx], traces.cost[:, idx], self.taus[t][None])
        return {"accuracy": float((ans[0] == traces.require_gold()[idx]).mean()), "mean_cost": float(paid[0].mean()),
                "exit": exit_[0], "tau": self.taus[t]}


def fit_frugal(traces: CascadeTraces, train_idx, grid: Sequence[float] = FRUGAL_GRID) -> FrugalGPT:
    """Fit the FrugalGPT-style cascade on labelled training queries (scorers, then every threshold config)."""
    from sklearn.linear_model import LogisticRegression

    train_idx = np.asarray(train_idx)
    if train_idx.size == 0:
        raise ValueError("FrugalGPT needs labelled training queries: got none")
    right = traces.correct()
    scorers = []
    for m in range(traces.n_models - 1):
        y = right[m, train_idx]
        if y.all() or not y.any():
            scorers.append(ConstantScorer(float(y.mean())))
            continue
        scorers.append(LogisticRegression(C=1.0, max_iter=500).fit(features(traces, m)[train_idx], y))
    taus = configs(grid, traces.n_models)
    f = FrugalGPT(scorers, taus, np.zeros(len(taus)), np.zeros(len(taus)))
    sc = f.scores(traces)[:, train_idx]
    _, ans, paid = run_configs(sc, traces.answer[:, train_idx], traces.cost[:, train_idx], taus)
    f.train_acc = (ans == traces.gold[train_idx][None]).mean(1)
    f.train_cost = paid.mean(1)
    return f


def frugal_frontier(traces: CascadeTraces, train_idx, test_idx, n_points: int = 25,
                    frugal: FrugalGPT | None = None) -> list[dict]:
    """FrugalGPT's test (mean cost, accuracy) across a sweep of training mean-cost budgets."""
    f = frugal if frugal is not None else fit_frugal(traces, train_idx)
    budgets = np.linspace(f.train_cost.min(), f.train_cost.max(), n_points)
    out, seen = [], set()
    for b in budgets:
        t = f.pick(b)
        if t in seen:
            continue
        seen.add(t)
        out.append({"budget": float(b), **f.run(traces, t, test_idx)})
    return sorted(out, key=lambda r: r["mean_cost"])


def accuracy_at_cost(frontier: list[dict], cost: float) -> float:
    """Accuracy of a frontier at a mean cost: the best point within that cost, linearly interpolated."""
    pts = sorted((r["mean_cost"], r["accuracy"]) for r in frontier)
    xs, ys = np.array([p[0] for p in pts]), np.maximum.accumulate([p[1] for p in pts])
    return float(np.interp(cost, xs, ys))
