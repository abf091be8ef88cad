"""Baselines on the step table: each model alone, the mixing line, random routing at matched cost, greedy by
step kind, the best fixed sequence, a non-RL router (logistic classifiers) and the brute-force oracle.

All of them walk the same arrays as the routers (`episodes.walk`: same outputs, same FLOPs, an episode ends at
its first wrong line). A method that reads the context with the router's encoder (the logistic router) pays
for it; one that is told the step's kind (greedy by kind, fixed sequences) or the outcome (the oracle) does not.
"""
from __future__ import annotations

import numpy as np

from .. import checks
from .episodes import Walk, fixed, walk
from .table import Arrays, check_cost_unit, check_lam


def point(name: str, w: Walk, cost_unit: float, lam: float = 0.0, **extra) -> dict:
    """One method's row: mean quality (accuracy), mean FLOPs (pool + router), cost in units, mean return."""
    cost_unit = check_cost_unit(cost_unit)
    q, c = float(w.quality.mean()), float(w.flops.mean())
    return {"method": name, "lam": float(lam), "accuracy": q, "cost_flops": c, "cost": c / cost_unit,
            "return": q - lam * c / cost_unit, "router_flops": float(w.router_flops.mean()), **extra}


def single_models(A: Arrays, cost_unit: float) -> tuple[list[dict], dict]:
    """Each pool model alone at every hop: rows, and the walks by model name."""
    rows, walks = [], {}
    for j, m in enumerate(A.names):
        w = fixed(A, np.full(A.horizon, j))
        walks[m] = w
        rows.append(point(f"{m} only", w, cost_unit))
    return rows, walks


def mixing_line(cheap: dict, dear: dict, cost: np.ndarray | float) -> np.ndarray:
    """Accuracy of the per-query coin flip between two methods at this cost (the straight line between them)."""
    for name, row in (("cheap", cheap), ("dear", dear)):
        checks.number(f"{name}['cost']", row["cost"])
        checks.number(f"{name}['accuracy']", row["accuracy"])
    if not dear["cost"] > cheap["cost"]:
        raise checks.BadArgument(f"dear must cost more than cheap: dear['cost'] = {dear['cost']!r}, cheap['cost'] = "
                                 f"{cheap['cost']!r}; pass the cheaper method first")
    try:
        c = np.asarray(cost, dtype=float)
    except (TypeError, ValueError):
        raise checks.BadArgument(f"cost must be a number or an array of numbers, got {checks.short(cost)}") from None
    if not np.isfinite(c).all():
        raise checks.BadArgument(f"cost must be finite (not NaN or inf), got {checks.short(cost)}")
    t = (c - cheap["cost"]) / (dear["cost"] - cheap["cost"])
    return cheap["accuracy"] + np.clip(t, 0, 1) * (dear["accuracy"] - cheap["accuracy"])


def random_walk(A: Arrays, p: float, dear: int, seed: int = 0) -> Walk:
    """Random routing: each hop calls pool model `dear` with probability p, else one of the others uniformly."""
    rng = np.random.default_rng(seed)
    n, H, M = A.right.shape
    u, other = rng.random((n, H)), rng.integers(0, M - 1, size=(n, H))
    others = np.array([j for j in range(M) if j != dear])
    acts = np.where(u < p, dear, others[other])
    return fixed(A, acts)


def random_at_cost(A: Arrays, cost: float, cost_unit: float, dear: int, seed: int = 0) -> dict:
    """Random routing whose mean cost matches `cost` (x cost_unit): p(dear) found by bisection (same draws)."""
    lo, hi = 0.0, 1.0
    c_lo = random_walk(A, lo, dear, seed).flops.mean() / cost_unit
    c_hi = random_walk(A, hi, dear, seed).flops.mean() / cost_unit
    if cost <= c_lo:
        hi = 0.0
    elif cost >= c_hi:
        lo = 1.0
    for _ in range(30):
        if hi - lo < 1e-4:
            break
        mid = (lo + hi) / 2
        if random_walk(A, mid, dear, seed).flops.mean() / cost_unit < cost:
            lo = mid
        else:
            hi = mid
    p = (lo + hi) / 2
    return point(f"random at matched cost (p({A.names[dear]}) = {p:.2f})", random_walk(A, p, dear, seed), cost_unit,
                 p_dear=p)


def kind_table(A: Arrays) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per step kind: each model's step accuracy and mean call FLOPs on the gold contexts (kinds, acc, flops)."""
    kinds = sorted({k for k in A.kinds.ravel() if k})
    acc = np.zeros((len(kinds), len(A.names)))
    fl = np.zeros_like(acc)
    for i, k in enumerate(kinds):
        sel = A.kinds == k
        acc[i] = A.right[sel].mean(0)
        fl[i] = A.flops[sel].mean(0)
    return kinds, acc, fl


def greedy_by_kind(train: Arrays, test: Arrays, cost_unit: float, lam: float) -> dict:
    """Told the next step's kind, call the model with the best training accuracy - lam x call cost on that kind."""
    lam = check_lam(lam)
    kinds, acc, fl = kind_table(train)
    pick = {k: int(np.argmax(acc[i] - lam * fl[i] / cost_unit)) for i, k in enumerate(kinds)}
    acts = np.vectorize(lambda k: pick.get(k, 0))(test.kinds)
    return point("greedy by step kind", fixed(test, acts), cost_unit, lam,
                 choice={k: train.names[j] for k, j in pick.items()})


def best_fixed(train: Arrays, test: Arrays, cost_unit: float, lam: float, passes: int = 2) -> dict:
    """Per problem length, the one model sequence with the best training return (coordinate ascent from the best
    single model, `passes` sweeps over the hops), evaluated held out."""
    lam = check_lam(lam)
    M = len(train.names)
    seqs = {}
    for L in sorted(set(train.n_steps.tolist()) | set(test.n_steps.tolist())):
        sub = np.flatnonzero(train.n_steps == L)
        if len(sub) == 0:
            sub = np.flatnonzero(train.n_steps >= L)

        def ret(seq):
            w = fixed(train, np.tile(np.array(seq + [0] * (train.horizon - L)), (len(train.problems), 1)))
            return float((w.quality[sub] - lam * w.flops[sub] / cost_unit).mean())

        best = max(([j] * L for j in range(M)), key=ret)
        best_r = ret(best)
        for _ in range(passes):
            for k in range(L):
                for j in range(M):
                    cand = best[:k] + [j] + best[k + 1:]
                    r = ret(cand)
                    if r > best_r + 1e-12:
                        best, best_r = cand, r
        seqs[L] = best
    acts = np.array([seqs[L] + [0] * (test.horizon - L) for L in test.n_steps])
    return point("best fixed sequence", fixed(test, acts), cost_unit, lam,
                 sequences={int(L): [train.names[j] for j in s] for L, s in seqs.items()})


class LogisticRouter:
    """The non-RL router: per model a logistic classifier on the router's input predicting whether its step will be
    right; call the cheapest model (pool order) whose predicted chance is >= tau, else the last (dearest) model."""

    def __init__(self, features, tau: float = 0.8):
        self.features, self.tau = features, float(tau)
        self.classifiers: list = []

    def inputs(self, A: Arrays, rows: np.ndarray, k: int) -> np.ndarray:
        """Projected view, hop and hops left (no cost spent: the classifier predicts a step, not a return)."""
        raw = np.concatenate([A.view[rows, k], np.full((len(rows), 1), k), (A.n_steps[rows] - k)[:, None],
                              np.zeros((len(rows), 1))], axis=1)
        return self.features(raw)[:, :-1]

    def fit(self, A: Arrays, seed: int = 0) -> "LogisticRouter":
        """Fit one classifier per pool model but the last on the training problems' gold contexts."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        X, Y = [], []
        for k in range(A.horizon):
            rows = np.flatnonzero(A.n_steps > k)
            X.append(self.inputs(A, rows, k))
            Y.append(A.right[rows, k])
        X, Y = np.concatenate(X), np.concatenate(Y)
        self.classifiers = []
        for j in range(len(A.names) - 1):
            y = Y[:, j]
            if y.all() or not y.any():
                self.classifiers.append(float(y.mean()))
                continue
            clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, random_state=seed))
            self.classifiers.append(clf.fit(X, y))
        return self

    def chances(self, A: Arrays, rows: np.ndarray, k: int) -> np.ndarray:
        """Predicted chance that each model but the last writes a right step: (rows, M - 1)."""
        x = self.inputs(A, rows, k)
        return np.stack([np.full(len(rows), c) if isinstance(c, float) else c.predict_proba(x)[:, 1]
                         for c in self.classifiers], axis=1)

    def run(self, A: Arrays, tau: float | None = None) -> Walk:
        """Its episodes on the arrays (it reads the context: the encoder is charged)."""
        t = self.tau if tau is None else tau
        M = len(A.names)

        def choose(k, rows, spent):
            ok = self.chances(A, rows, k) >= t
            return np.where(ok.any(1), ok.argmax(1), M - 1)

        return walk(A, choose, reads_context=True)


TAUS = (0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.995)


def logistic_router(router: LogisticRouter, train: Arrays, test: Arrays, cost_unit: float, lam: float) -> dict:
    """The logistic router with the threshold tau that gives the best training return at this lam, held out."""
    lam = check_lam(lam)
    rets = []
    for t in TAUS:
        w = router.run(train, t)
        rets.append(float((w.quality - lam * w.flops / cost_unit).mean()))
    tau = TAUS[int(np.argmax(rets))]
    return point("logistic router (non-RL)", router.run(test, tau), cost_unit, lam, tau=tau)


def oracle_actions(A: Arrays, cost_unit: float, lam: float) -> np.ndarray:
    """Per problem, the route with the best return, knowing every outcome (exact: success via the cheapest right
    model at every hop, or the cheapest failure); ties go to success."""
    lam = check_lam(lam)
    cost_unit = check_cost_unit(cost_unit)
    n, H, M = A.right.shape
    valid = np.arange(H)[None, :] < A.n_steps[:, None]
    right_cost = np.where(A.right, A.flops, np.inf)
    wrong_cost = np.where(~A.right, A.flops, np.inf)
    r_best, r_arg = right_cost.min(2), right_cost.argmin(2)
    w_best, w_arg = wrong_cost.min(2), wrong_cost.argmin(2)
    r_best = np.where(valid, r_best, 0.0)
    success = r_best.sum(1)
    prefix = np.concatenate([np.zeros((n, 1)), np.cumsum(r_best, 1)[:, :-1]], axis=1)
    fail = np.where(valid, prefix + w_best, np.inf)
    k_fail = fail.argmin(1)
    fail_best = fail[np.arange(n), k_fail]
    with np.errstate(invalid="ignore"):   # 0 x inf: no right (or no wrong) route at all
        win_ret = np.where(np.isfinite(success), 1 - lam * success / cost_unit, -np.inf)
        fail_ret = np.where(np.isfinite(fail_best), -lam * fail_best / cost_unit, -np.inf)
    win = win_ret >= fail_ret
    acts = np.where(valid, r_arg, 0)
    for i in np.flatnonzero(~win):
        acts[i, k_fail[i]] = w_arg[i, k_fail[i]]
    return acts


def oracle(A: Arrays, cost_unit: float, lam: float) -> tuple[dict, Walk]:
    """The per-problem brute-force oracle at this lam: its row and its episodes."""
    w = fixed(A, oracle_actions(A, cost_unit, lam))
    return point("oracle", w, cost_unit, lam), w
