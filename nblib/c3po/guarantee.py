"""The guarantee check: over many random D_ss / D_cal / test splits, how often a test query's cost exceeds B.

Given a fixed pool of Q traced queries, a uniformly random split makes the calibration and test queries
exchangeable, so for a tau fixed independently of D_cal the split-conformal bound holds exactly over
the randomness of the split: E[test exceedance rate] <= alpha. What remains is Monte-Carlo error of
the mean over S splits; the slack is `z` standard errors of that mean (z = 3 by default, one-sided).

A split where no configuration is feasible (or, in "split" mode, the chosen one is not certified)
deploys nothing: it counts as no exceedance in `violation` (the guaranteed quantity
P(deployed and cost > B)) and is reported in `infeasible`. Everything is vectorised over splits,
configurations and queries (numpy), so 200 splits x several budgets and alphas take milliseconds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .cascade import Evaluated, Prepared, check_alpha, choose, conformal_rank


def splits(n_queries: int, n_ss: int, n_cal: int, n_splits: int = 200, seed: int = 0):
    """S random permutations cut into D_ss (S, n_ss), D_cal (S, n_cal) and test (S, rest) index arrays."""
    if n_splits < 1:
        raise ValueError(f"n_splits must be >= 1, got {n_splits}")
    if n_ss < 1 or n_cal < 1 or n_ss + n_cal >= n_queries:
        raise ValueError(f"need n_ss >= 1, n_cal >= 1 and n_ss + n_cal < {n_queries} queries (so a test set "
                         f"remains); got n_ss={n_ss}, n_cal={n_cal}")
    rng = np.random.default_rng(seed)
    perms = np.argsort(rng.random((n_splits, n_queries)), axis=1)
    return perms[:, :n_ss], perms[:, n_ss:n_ss + n_cal], perms[:, n_ss + n_cal:]


@dataclass
class SplitRun:
    """C3PO on S random splits at one (budget, alpha): the chosen config and its test outcome per split."""

    budget: float
    alpha: float
    mode: str
    n_cal: int
    t: np.ndarray              # (S,) chosen config (-1 = infeasible)
    exceed: np.ndarray         # (S,) test share of queries with cost > budget (0 where infeasible)
    accuracy: np.ndarray       # (S,) test accuracy (nan where infeasible or unlabelled)
    mean_cost: np.ndarray      # (S,) test mean cost (nan where infeasible)
    agreement: np.ndarray      # (S,) test agreement with the MPM (nan where infeasible)

    @property
    def feasible(self) -> np.ndarray:
        """(S,) whether a configuration was deployed."""
        return self.t >= 0

    @property
    def violation(self) -> float:
        """Mean over splits of the test exceedance rate (infeasible splits count 0): <= alpha in theory."""
        return float(self.exceed.mean())

    def slack(self, z: float = 3.0) -> float:
        """z standard errors of that mean over the S splits (Monte-Carlo error; >= 1/S so a zero spread is not exact)."""
        s = len(self.exceed)
        return float(z * self.exceed.std(ddof=1) / np.sqrt(s)) + 1.0 / s if s > 1 else 1.0

    @property
    def infeasible(self) -> float:
        """Share of splits where nothing was deployed."""
        return float((~self.feasible).mean())


def run_splits(ev: Evaluated, budget: float, alpha: float, ss, cal, test, mode: str = "reuse",
               pre: Prepared | None = None) -> SplitRun:
    """C3PO's choice on every split (vectorised) and its test exceedance, accuracy, cost and MPM agreement.

    `pre`: `cascade.Prepared(ev, ss, cal)` computed once, when the same splits are run many times.
    """
    alpha = check_alpha(alpha)
    r = choose(ev, ss, cal, budget, alpha, mode, pre)
    t = r["t"]
    tt = np.maximum(t, 0)[:, None]
    ok = t >= 0
    exceed = np.where(ok, (ev.cost[tt, test] > budget).mean(1), 0.0)
    nan = np.full(len(t), np.nan)
    acc = nan.copy() if ev.correct is None else np.where(ok, ev.correct[tt, test].mean(1), np.nan)
    cost = np.where(ok, ev.cost[tt, test].mean(1), np.nan)
    agree = np.where(ok, 1 - ev.disagree[tt, test].mean(1), np.nan)
    return SplitRun(float(budget), alpha, mode, cal.shape[1], t, exceed, acc, cost, agree)


def sweep(ev: Evaluated, budgets: Sequence[float], alphas: Sequence[float], n_ss: int = 50, n_cal: int = 50,
          n_splits: int = 200, seed: int = 0, mode: str = "reuse", z: float = 3.0) -> list[dict]:
    """Violation rate vs bound for every (budget, alpha) over the same S random splits."""
    ss, cal, test = splits(ev.cost.shape[1], n_ss, n_cal, n_splits, seed)
    pre = Prepared(ev, ss, cal)
    rows = []
    for b in budgets:
        for a in alphas:
            run = run_splits(ev, b, a, ss, cal, test, mode, pre)
            rows.append({"budget": float(b), "alpha": float(a), "mode": mode, "violation": run.violation,
                         "slack": run.slack(z), "bound": float(a) + run.slack(z),
                         "excess": run.violation - float(a) - run.slack(z), "infeasible": run.infeasible,
                         "accuracy": float(np.nanmean(run.accuracy)) if run.feasible.any() else float("nan"),
                         "mean_cost": float(np.nanmean(run.mean_cost)) if run.feasible.any() else float("nan")})
    return rows


def min_feasible_alpha(n_cal: int) -> float:
    """The smallest alpha at which n_cal calibration queries can certify anything: ceil((n+1)(1-a)) <= n."""
    lo, hi = 1e-6, 1 - 1e-6
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if conformal_rank(n_cal, mid) > n_cal else (lo, mid)
    return hi
