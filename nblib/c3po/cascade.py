"""The cascade rule, the conformal cost constraint, and C3PO's label-free threshold search.

Cascade rule (thresholds tau = (tau_1, ..., tau_{M-1}), tau_M = 0): visit the models cheapest first; a
model with tau_m > 1 is skipped (no cost); otherwise it is queried (its K samples are paid for) and, if
its vote share s_m(x) >= tau_m, its majority answer is returned; the most powerful model (MPM) always
answers when reached.

Label-free objective: the regret w.r.t. the MPM, L_ss(tau) = mean over D_ss of 1[cascade(x) != a_M(x)].
Constraint: split conformal on D_cal (n queries): k = ceil((n + 1)(1 - alpha)); q_hat = the k-th smallest
calibration cost (inf when k > n); tau is feasible iff q_hat <= B. Then P(cost(x_test) > B) <= alpha for
any tau fixed independently of D_cal.

Two modes (the research brief's caveat):

- ``"reuse"`` (the paper's code): every grid point is checked on D_cal and the feasible one of least
  D_ss regret is returned. D_cal filters all |G|^(M-1) candidates, so strictly the bound needs a
  multiplicity correction; in practice the violation rate is measured (`guarantee`).
- ``"split"`` (strict): tau is chosen on D_ss alone (least regret among those whose D_ss conformal
  quantile is within B), then certified once on D_cal. The certified tau was fixed independently of
  D_cal, so P(certified and cost(x_test) > B) <= alpha holds exactly; an uncertified tau is reported
  as infeasible rather than deployed.

Budget unit: whatever the traces' cost is: for the task world, the realised analytic FLOPs of all K
samples of every visited model on that query (prefill + KV-cached decode, `taskworld.generation`).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .. import checks
from .traces import CascadeTraces

SKIP = 1.1  # a threshold above 1: the model is skipped
MODES = ("reuse", "split")


class InfeasibleBudget(ValueError):
    """No threshold configuration meets P(cost > budget) <= alpha on this calibration set."""


# ----------------------------------------------------------------------------- checks
def check_alpha(alpha) -> float:
    """alpha as a float in (0, 1), or a ValueError saying what alpha is."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)) or not 0 < alpha < 1:
        raise ValueError(f"alpha (the allowed probability that a query's cost exceeds the budget) must lie "
                         f"strictly between 0 and 1, got {alpha!r}")
    return float(alpha)


def check_calibration(idx, name: str = "the calibration set") -> np.ndarray:
    """A non-empty 1-D array, or a ValueError: the conformal quantile needs calibration queries."""
    if isinstance(idx, (str, bytes, dict)) or np.ndim(idx) != 1:
        raise ValueError(f"{name} must be a 1-D list of query indices (or costs), got {type(idx).__name__} "
                         f"{idx!r:.80}")
    idx = np.asarray(idx)
    if idx.size == 0:
        raise ValueError("the calibration set is empty: the conformal cost quantile needs at least one "
                         "calibration query (and at least ceil(1/alpha) - 1 of them to be feasible at all)")
    return idx


def check_split(traces: CascadeTraces, ss_idx: np.ndarray, cal_idx: np.ndarray) -> None:
    """Refuse splits that void the guarantee: repeated or out-of-range indices, or D_cal overlapping D_ss."""
    q = traces.n_queries
    for name, idx in (("D_ss", ss_idx), ("D_cal", cal_idx)):
        if idx.ndim != 1:
            raise ValueError(f"{name} must be a 1-D list of query indices in [0, {q}), got an array of shape "
                             f"{idx.shape}")
        if idx.size and (not np.issubdtype(idx.dtype, np.integer) or idx.min() < -q or idx.max() >= q):
            raise ValueError(f"{name} must hold query indices in [0, {q}); got {idx[:5].tolist()}...")
        norm = np.asarray(idx) % q
        if np.unique(norm).size != norm.size:
            raise ValueError(f"{name} repeats queries ({norm.size} indices, {np.unique(norm).size} distinct): the "
                             "conformal bound needs exchangeable, distinct calibration queries; draw them with "
                             "c3po.random_split")
    both = np.intersect1d(ss_idx % q, cal_idx % q)
    if both.size:
        raise ValueError(f"D_cal shares {both.size} queries with D_ss (e.g. {both[:3].tolist()}): the thresholds "
                         "were chosen on D_ss, so certifying them on the same queries voids the guarantee; use "
                         "disjoint splits (c3po.random_split)")


def cheapest_cost(traces: CascadeTraces, idx=None) -> tuple[str, float]:
    """The cheapest model (lowest mean cost) and its smallest per-query cost on `idx`: no cascade costs less."""
    cost = traces.cost if idx is None else traces.cost[:, np.asarray(idx)]
    m = int(np.argmin(cost.mean(1)))
    return traces.models[m], float(cost.min())


def check_budget(traces: CascadeTraces, budget, idx=None) -> float:
    """The budget as a float, or a ValueError when it is below the cheapest model's cost."""
    if isinstance(budget, bool) or not isinstance(budget, (int, float, np.floating, np.integer)) or \
            not math.isfinite(budget):
        raise ValueError(f"the budget must be a finite number (in {traces.unit} per query), got {budget!r}")
    name, floor = cheapest_cost(traces, idx)
    if budget < floor:
        raise ValueError(f"budget {budget:.4g} {traces.unit} per query is below the cheapest model's cost "
                         f"({name}: at least {floor:.4g} {traces.unit} per query): no cascade fits; raise the "
                         "budget")
    return float(budget)


# ----------------------------------------------------------------------------- grid and quantile
def paper_grid(k: int) -> np.ndarray:
    """The paper's threshold grid {0, 1.1/K, 2.2/K, ..., 1.1}: K + 1 values, the last one = skip."""
    from .sampling import check_k

    k = check_k(k)
    return np.round(np.arange(k + 1) * SKIP / k, 10)


MAX_CONFIGS = 2_000_000  # threshold vectors `configs` enumerates at most (each is run on every query)


def configs(grid: Sequence[float], n_models: int) -> np.ndarray:
    """Every threshold vector over the grid: (|G|^(M-1), M), the MPM's threshold fixed at 0."""
    n_models = checks.whole("n_models", n_models, low=1)   # a cascade needs at least one model
    try:
        grid = np.asarray(checks.non_empty("grid", grid, "threshold"), dtype=float)
    except (TypeError, ValueError) as e:
        raise checks.BadArgument(f"grid must be a list of thresholds in [0, {SKIP}] ({e})") from None
    if grid.ndim != 1 or not np.isfinite(grid).all() or (grid < 0).any() or (grid > SKIP).any():
        raise checks.BadArgument(f"grid must be a list of finite thresholds in [0, {SKIP}] ({SKIP} = skip the "
                                 f"model), got {grid.tolist()[:8]}")
    if n_models == 1:
        return np.zeros((1, 1))
    if math.log(max(len(grid), 1)) * (n_models - 1) > math.log(MAX_CONFIGS):
        raise checks.BadArgument(f"grid ({len(grid)} thresholds) and n_models ({n_models}) make "
                                 f"{len(grid)}^{n_models - 1} configurations, more than {MAX_CONFIGS:,}: use a "
                                 "coarser grid or fewer models")
    if n_models - 1 <= 16:
        mesh = np.stack(np.meshgrid(*[grid] * (n_models - 1), indexing="ij"), -1).reshape(-1, n_models - 1)
    else:   # numpy's meshgrid stops at 32 dimensions; the same order (last threshold fastest)
        mesh = np.array(list(itertools.product(grid, repeat=n_models - 1)), dtype=float)
    return np.concatenate([mesh, np.zeros((len(mesh), 1))], 1)


def conformal_rank(n: int, alpha: float) -> int:
    """k = ceil((n + 1)(1 - alpha)), the 1-based rank of the conformal quantile (k > n: infeasible)."""
    alpha = check_alpha(alpha)
    n = checks.whole("n", n, low=0)   # the number of calibration queries
    return int(math.ceil((n + 1) * (1 - alpha) - 1e-9))


def conformal_quantile(costs, alpha: float) -> float:
    """q_hat: the k-th smallest of the calibration costs, k = ceil((n + 1)(1 - alpha)); inf when k > n."""
    try:
        costs = np.asarray(check_calibration(costs, "costs"), dtype=float)
    except (TypeError, ValueError) as e:
        raise ValueError(f"costs must be a list of calibration costs (numbers): {e}") from None
    if not np.isfinite(costs).all():
        raise ValueError(f"costs must be finite numbers (a NaN or inf cost is no measurement), got "
                         f"{costs[~np.isfinite(costs)][:3].tolist()}")
    k = conformal_rank(costs.size, alpha)
    return float("inf") if k > costs.size else float(np.sort(costs)[k - 1])


# ----------------------------------------------------------------------------- the cascade, vectorised
@dataclass
class Evaluated:
    """Every threshold configuration run over every query at once: (T, Q) exits, answers, costs."""

    taus: np.ndarray        # (T, M)
    exit: np.ndarray        # (T, Q) index of the model that answered
    answer: np.ndarray      # (T, Q) answer code returned
    cost: np.ndarray        # (T, Q) cost paid
    disagree: np.ndarray    # (T, Q) answer != the MPM's majority answer (label-free regret)
    correct: np.ndarray | None = None  # (T, Q) answer == gold (labels; accuracy only)
    models: list[str] = field(default_factory=list)
    unit: str = "FLOPs"


def run_configs(conf: np.ndarray, answer: np.ndarray, cost: np.ndarray, taus: np.ndarray):
    """The cascade rule for T configurations at once: returns exit, answer and cost, each (T, Q)."""
    taus = np.atleast_2d(np.asarray(taus, dtype=float))
    m = conf.shape[0]
    if taus.shape[1] != m:
        raise ValueError(f"each threshold vector needs {m} entries (one per model), got {taus.shape[1]}")
    skip = taus > 1.0                                                       # (T, M)
    accept = (~skip[:, :, None]) & (conf[None] >= taus[:, :, None])         # (T, M, Q)
    accept[:, -1, :] = True                                                 # the MPM always answers
    exit_ = accept.argmax(1)                                                # (T, Q) first model that answers
    visited = (~skip[:, :, None]) & (np.arange(m)[None, :, None] <= exit_[:, None, :])
    paid = (visited * cost[None]).sum(1)                                    # (T, Q)
    ans = np.take_along_axis(np.broadcast_to(answer[None], (len(taus),) + answer.shape), exit_[:, None, :], 1)[:, 0]
    return exit_, ans, paid


def evaluate(traces: CascadeTraces, taus: np.ndarray | None = None, grid: Sequence[float] | None = None
             ) -> Evaluated:
    """Run every configuration (default: the paper's grid over all but the MPM) on every query."""
    if taus is None:
        taus = configs(paper_grid(traces.k) if grid is None else grid, traces.n_models)
    taus = np.atleast_2d(np.asarray(taus, dtype=float))
    exit_, ans, paid = run_configs(traces.share, traces.answer, traces.cost, taus)
    correct = None if traces.gold is None else ans == traces.gold[None]
    return Evaluated(taus, exit_, ans, paid, ans != traces.mpm[None], correct, list(traces.models), traces.unit)


def cascade(traces: CascadeTraces, tau: Sequence[float]) -> dict:
    """Run one threshold vector: per query who answered, with what vote share, which answer, at what cost."""
    try:
        tau = np.asarray(tau, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"tau must be a list of {traces.n_models - 1} thresholds, got {tau!r:.80}") from None
    if not np.isfinite(tau).all():
        raise ValueError(f"tau must hold finite thresholds, got {tau.tolist()}")
    if tau.shape != (traces.n_models,):
        if tau.shape == (traces.n_models - 1,):
            tau = np.append(tau, 0.0)
        else:
            raise ValueError(f"tau needs {traces.n_models - 1} thresholds (the MPM's is 0), got {tau.tolist()}")
    exit_, ans, paid = run_configs(traces.share, traces.answer, traces.cost, tau[None])
    e = exit_[0]
    out = {"exit": e, "answer": ans[0], "cost": paid[0], "share": traces.share[e, np.arange(traces.n_queries)],
           "agrees_with_mpm": ans[0] == traces.mpm}
    if traces.gold is not None:
        out["correct"] = ans[0] == traces.gold
    return out


# ----------------------------------------------------------------------------- selection
def choose(ev: Evaluated, ss: np.ndarray, cal: np.ndarray, budget: float, alpha: float, mode: str = "reuse",
           pre: "Prepared | None" = None) -> dict:
    """C3PO's choice on many splits at once: ss (S, n_ss) and cal (S, n_cal) index arrays -> per split (S,).

    Returns t (chosen config index, -1 when none), feasible (a config was chosen and, in "split" mode,
    certified on D_cal), q_hat (its D_cal conformal quantile), regret (its D_ss regret), n_feasible.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    pre = pre if pre is not None else Prepared(ev, ss, cal)
    lss, tie = pre.lss, pre.tie
    q_cal = pre.quantiles("cal", alpha)                                     # (T, S)
    if mode == "reuse":
        ok = q_cal <= budget
    else:
        ok = pre.quantiles("ss", alpha) <= budget
    ss = pre.ss
    score = np.where(ok, lss + tie, np.inf)
    t = score.argmin(0)
    s = np.arange(ss.shape[0])
    chosen = np.isfinite(score[t, s])
    feasible = chosen & (q_cal[t, s] <= budget)
    return {"t": np.where(feasible, t, -1), "feasible": feasible, "q_hat": q_cal[t, s], "regret": lss[t, s],
            "n_feasible": ok.sum(0), "selected": np.where(chosen, t, -1)}


class Prepared:
    """What `choose` needs of a set of splits, computed once: D_ss regret, tie-break, sorted costs per split."""

    def __init__(self, ev: Evaluated, ss, cal):
        ss, cal = np.atleast_2d(ss), np.atleast_2d(cal)
        if cal.shape[1] == 0:
            check_calibration(cal[0])
        if ss.shape[1] == 0:
            raise ValueError("the self-supervised split D_ss is empty: the regret needs at least one query")
        self.ss, self.cal = ss, cal
        self.lss = ev.disagree[:, ss].mean(-1)                                       # (T, S)
        scale = max(float(ev.cost.max()), 1e-300)
        self.tie = ev.cost[:, ss].mean(-1) / scale * 1e-6    # prefer the cheaper config on equal regret
        self.sorted = {"cal": np.sort(ev.cost[:, cal], axis=-1), "ss": np.sort(ev.cost[:, ss], axis=-1)}

    def quantiles(self, which: str, alpha: float) -> np.ndarray:
        """(T, S) conformal quantile of every config's cost on each split's D_cal ("cal") or D_ss ("ss")."""
        srt = self.sorted[which]
        n = srt.shape[-1]
        k = conformal_rank(n, alpha)
        return np.full(srt.shape[:2], np.inf) if k > n else srt[..., k - 1]


def split_quantiles(cost: np.ndarray, idx: np.ndarray, alpha: float) -> np.ndarray:
    """Conformal quantiles of every config's cost on each split's index set: (T, S)."""
    idx = np.atleast_2d(idx)
    n = idx.shape[1]
    k = conformal_rank(n, alpha)
    if k > n:
        return np.full((cost.shape[0], idx.shape[0]), np.inf)
    return np.partition(cost[:, idx], k - 1, axis=-1)[..., k - 1]


@dataclass
class Fit:
    """The thresholds C3PO chose, and what they were chosen on."""

    tau: np.ndarray             # (M,) thresholds, the MPM's = 0; > 1 = skipped
    budget: float
    alpha: float
    mode: str
    q_hat: float                # the conformal quantile of its cost on D_cal (<= budget)
    regret_ss: float            # disagreement with the MPM on D_ss
    n_ss: int
    n_cal: int
    n_configs: int
    n_feasible: int
    models: list[str]
    unit: str

    def regret_bound(self, delta: float = 0.05) -> float:
        """Occam bound on the true regret (w.p. >= 1 - delta): L_ss + sqrt((ln |G|^(M-1) + ln 1/delta) / 2 n_ss)."""
        check_alpha(delta)
        return self.regret_ss + math.sqrt((math.log(self.n_configs) + math.log(1 / delta)) / (2 * self.n_ss))

    def describe(self) -> str:
        """One line: the thresholds per model, budget, alpha, q_hat and regret."""
        th = ", ".join(f"{m}: {'skip' if t > 1 else f'{t:.2f}'}" for m, t in zip(self.models[:-1], self.tau[:-1], strict=True))
        return (f"tau = ({th}); {self.models[-1]} answers the rest · B = {self.budget:.4g} {self.unit}, "
                f"alpha = {self.alpha:g}, q_hat = {self.q_hat:.4g} · D_ss regret {self.regret_ss:.3f} "
                f"({self.n_feasible}/{self.n_configs} configs feasible, mode {self.mode})")


def fit(traces: CascadeTraces, ss_idx, cal_idx, budget: float, alpha: float = 0.1, mode: str = "reuse",
        grid: Sequence[float] | None = None, ev: Evaluated | None = None) -> Fit:
    """C3PO: thresholds of least label-free regret on D_ss whose conformal cost quantile on D_cal is <= budget.

    Raises ValueError for alpha outside (0, 1), an empty calibration set, or a budget below the cheapest
    model's cost, and InfeasibleBudget (a ValueError) when no configuration fits (it names the smallest
    budget that would).
    """
    alpha = check_alpha(alpha)
    cal_idx, ss_idx = check_calibration(cal_idx), np.asarray(ss_idx)
    check_split(traces, ss_idx, cal_idx)
    budget = check_budget(traces, budget, cal_idx)
    ev = ev if ev is not None else evaluate(traces, grid=grid)
    r = choose(ev, ss_idx[None], cal_idx[None], budget, alpha, mode)
    n_cal = cal_idx.size
    if not r["feasible"][0]:
        k = conformal_rank(n_cal, alpha)
        if k > n_cal:
            raise InfeasibleBudget(f"with {n_cal} calibration queries no budget can be certified at alpha = "
                                   f"{alpha:g}: the conformal rank ceil((n+1)(1-alpha)) = {k} exceeds n; use at least "
                                   f"{math.ceil(1 / alpha) - 1} calibration queries or a larger alpha")
        least = float(split_quantiles(ev.cost, cal_idx[None], alpha).min())
        why = ("no configuration's D_cal quantile is within it" if mode == "reuse" else
               "the configuration chosen on D_ss was not certified on D_cal")
        raise InfeasibleBudget(f"budget {budget:.4g} {traces.unit} is infeasible at alpha = {alpha:g} ({why}); "
                               f"the smallest budget any configuration meets on this calibration set is "
                               f"{least:.4g} {traces.unit}")
    t = int(r["t"][0])
    return Fit(ev.taus[t].copy(), budget, alpha, mode, float(r["q_hat"][0]), float(r["regret"][0]), ss_idx.size,
               n_cal, len(ev.taus), int(r["n_feasible"][0]), list(traces.models), traces.unit)


def random_split(n_queries: int, n_ss: int = 50, n_cal: int = 50, seed: int = 42):
    """A seeded random split of query indices into D_ss, D_cal and the test rest (the paper: 50 / 50 / rest)."""
    n_queries = checks.whole("n_queries", n_queries, low=2)
    n_ss, n_cal = checks.whole("n_ss", n_ss, low=1), checks.whole("n_cal", n_cal, low=0)
    seed = checks.whole("seed", seed, low=0)
    if n_ss + n_cal >= n_queries:
        raise ValueError(f"need n_ss >= 1, n_cal >= 0 and n_ss + n_cal < {n_queries} queries; got n_ss={n_ss}, "
                         f"n_cal={n_cal}")
    perm = np.random.default_rng(seed).permutation(n_queries)
    return perm[:n_ss], perm[n_ss:n_ss + n_cal], perm[n_ss + n_cal:]
