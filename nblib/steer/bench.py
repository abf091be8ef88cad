"""The measured frontier: a threshold grid of routed runs and every baseline, once, cached.

`frontier(cfg)` calibrates the small model's confidence on unlabeled validation
problems, routes the test problems at every threshold of the grid (one pass,
`Router.run`), and in the same run measures small-only, large-only, mid as the
small model, query-level routing (the whole problem to one model, decided by the
small model's confidence on its first step) and random step routing at the
large-step shares STEER reached. Everything lands in one table of points
(method, threshold, accuracy, FLOPs split by model and prefill / decode) that the
notebook's slider and benchmarks/steer.py index.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import taskworld as tw
from .confidence import Calibrator
from .engine import ConfidenceDecider, RandomDecider, RoutedRun, Router, RouterConfig
from .routing import threshold_grid
from .steps import TaskVocab


@dataclass(frozen=True)
class FrontierConfig:
    """What one frontier measures: the pair, the splits, the confidence read and the grid."""

    small: str = "tiny"
    large: str = "large"
    mid: str | None = "mid"          # also run STEER with this model as the small one (None: skip)
    n_test: int = 200
    n_calib: int = 200               # unlabeled validation problems for the calibration pool
    n_steps: int | None = None       # None: the task world's 1-6 steps; e.g. 8: longer than trained on
    seed: int = 0
    n_thresholds: int = 25
    score: str = "max_prob"
    lookahead: int = 16              # the small model drafts the whole step to read its confidence
    aggregate: str = "min"
    batch_size: int = 64
    worked: int = 8                  # problems whose steps are kept in full for the notebook's drawings
    n_random: int = 13               # shares at which random step routing is run (STEER's, evenly subsampled)


@dataclass
class Frontier:
    """The measured points of every method, per-problem rows, worked problems and the calibration."""

    config: FrontierConfig
    points: object                    # pandas DataFrame: one row per (method, threshold)
    per_problem: object               # pandas DataFrame: one row per (method, threshold, problem)
    calibrator: Calibrator
    pool_scores: list[float]
    pool_valid: list[bool]
    thresholds: list[float]
    worked: dict = field(default_factory=dict)  # threshold index -> list of step lists for the worked problems
    wall_s: dict = field(default_factory=dict)  # stage -> seconds (measured under whatever load there was)
    params: dict = field(default_factory=dict)  # model -> parameter count


def run_rows(method: str, taus, runs_by_tau, problems, extra=None) -> list[dict]:
    """One per-problem row per (threshold, problem) of a routed run."""
    rows = []
    for j, (tau, runs) in enumerate(zip(taus, runs_by_tau, strict=False)):
        for i, (p, r) in enumerate(zip(problems, runs, strict=False)):
            rows.append(problem_row(method, j, tau, i, p, r, **(extra or {})))
    return rows


def problem_row(method: str, j: int, tau: float, i: int, p, r: RoutedRun, **extra) -> dict:
    """The cost and outcome of one routed run as a flat row."""
    return {"method": method, "t": j, "threshold": tau, "problem": i, "correct": tw.problems.check_answer(p, r.text),
            "flops": r.flops, "small_prefill": r.flops_of("small", "prefill"), "small_decode": r.flops_of("small", "decode"),
            "large_prefill": r.flops_of("large", "prefill"), "large_decode": r.flops_of("large", "decode"),
            "large_prefill_tokens": r.tokens_of("large", "prefill"), "steps": len(r.steps),
            "large_steps": r.large_steps, "route": "".join("L" if s.author == "large" else "S" for s in r.steps),
            **extra}


def summarise(per_problem) -> object:
    """Mean accuracy, FLOPs and large-step share per (method, threshold)."""
    g = per_problem.groupby(["method", "t"], sort=False)
    pts = g.agg(threshold=("threshold", "first"), accuracy=("correct", "mean"), flops=("flops", "mean"),
                small_prefill=("small_prefill", "mean"), small_decode=("small_decode", "mean"),
                large_prefill=("large_prefill", "mean"), large_decode=("large_decode", "mean"),
                steps=("steps", "sum"), large_steps=("large_steps", "sum"), n=("problem", "count")).reset_index()
    pts["large_share"] = pts["large_steps"] / pts["steps"].clip(lower=1)
    return pts


def steer_router(small, large, cfg: FrontierConfig) -> Router:
    """The task-world router with the frontier's confidence read."""
    return Router(small, large, TaskVocab(), config=RouterConfig(cfg.score, cfg.lookahead, cfg.aggregate))


def calibrate(router: Router, problems) -> tuple[Calibrator, list[float], list[bool]]:
    """Fit the GMM on the small model's step scores over unlabeled problems (small-only run)."""
    runs = router.run([tw.prompt_of(p) for p in problems], [0.0])[0]
    scores, valid = [], []
    for p, r in zip(problems, runs, strict=False):
        checks = tw.problems.check_solution(p, r.text)
        for k, s in enumerate(r.steps):
            scores.append(float(s.score))
            valid.append(bool(checks[k].valid) if k < len(checks) else tw.problems.check_answer(p, r.text))
    return Calibrator().fit(scores), scores, valid


def compute_frontier(cfg: FrontierConfig = FrontierConfig()) -> Frontier:
    """Measure every method's frontier (see the module docstring); not cached: `frontier` is."""
    import pandas as pd

    t_all = time.perf_counter()
    wall = {}
    small, large = tw.load_model(cfg.small), tw.load_model(cfg.large)
    router = steer_router(small, large, cfg)
    test = tw.problems.problems("test", cfg.n_test, cfg.seed, tw.TaskConfig(), n_steps=cfg.n_steps)
    calib_set = tw.problems.problems("val", cfg.n_calib, cfg.seed, tw.TaskConfig(), n_steps=cfg.n_steps)
    prompts = [tw.prompt_of(p) for p in test]
    t0 = time.perf_counter()
    cal, pool, pool_valid = calibrate(router, calib_set)
    wall["calibrate"] = time.perf_counter() - t0
    taus = threshold_grid(cal.posterior(pool), cfg.n_thresholds)
    t0 = time.perf_counter()
    steer_runs = router.run(prompts, taus, ConfidenceDecider(cal), batch_size=cfg.batch_size)
    wall["steer_grid"] = time.perf_counter() - t0
    rows = run_rows("STEER", taus, steer_runs, test)
    worked = {j: [[asdict(s) for s in runs[i].steps] for i in range(min(cfg.worked, len(test)))]
              for j, runs in enumerate(steer_runs)}
    small_only, large_only = steer_runs[0], steer_runs[-1]
    # query-level routing: the small model's confidence on its first step sends the whole problem to one model
    for j, tau in enumerate(taus):
        for i, p in enumerate(test):
            s, lg = small_only[i], large_only[i]
            first = s.steps[0]
            go = tau >= 1.0 or first.value < tau
            base = problem_row("query routing", j, tau, i, p, lg if go else s)
            if go and tau < 1.0:  # it paid for the small model's read of the first step before handing over
                base["flops"] += first.flops["small"]
                base["small_prefill"] += first.flops["small"]
            rows.append(base)
    pts = summarise(pd.DataFrame(rows))
    # random step routing at the large-step shares STEER reached
    shares = sorted(set(float(x) for x in pts[pts.method == "STEER"]["large_share"]))
    inner = [s for s in shares if 0.0 < s < 1.0]
    if len(inner) > cfg.n_random - 2:
        inner = [inner[int(k)] for k in np.unique(np.linspace(0, len(inner) - 1, max(cfg.n_random - 2, 1)).round())]
    shares = [0.0] + inner + [1.0]
    t0 = time.perf_counter()
    rnd = router.run(prompts, shares, RandomDecider(cfg.seed), batch_size=cfg.batch_size)
    wall["random_grid"] = time.perf_counter() - t0
    rows += run_rows("random steps", shares, rnd, test)
    params = {cfg.small: tw.models.shape_of(small).params(), cfg.large: tw.models.shape_of(large).params()}
    if cfg.mid:
        mid = tw.load_model(cfg.mid)
        mrouter = steer_router(mid, large, cfg)
        mcal, mpool, _ = calibrate(mrouter, calib_set)
        mtaus = threshold_grid(mcal.posterior(mpool), cfg.n_thresholds)
        t0 = time.perf_counter()
        mruns = mrouter.run(prompts, mtaus, ConfidenceDecider(mcal), batch_size=cfg.batch_size)
        wall["mid_grid"] = time.perf_counter() - t0
        rows += run_rows(f"STEER ({cfg.mid} as small)", mtaus, mruns, test)
        rows += run_rows(f"{cfg.mid} only", [0.0], [mruns[0]], test)
        params[cfg.mid] = tw.models.shape_of(mid).params()
    per = pd.DataFrame(rows)
    pts = summarise(per)
    wall["total"] = time.perf_counter() - t_all
    return Frontier(cfg, pts, per, cal, pool, pool_valid, taus, worked, wall, params)


def frontier(cfg: FrontierConfig = FrontierConfig(), verbose: bool = True) -> Frontier:
    """The frontier for this config, computed once and cached (keyed by config, the models' weights and the code)."""
    from .. import cache
    from . import confidence, engine, routing, steps

    def compute():
        return compute_frontier(cfg)

    code = (compute_frontier, calibrate, run_rows, problem_row, summarise, engine, confidence, routing, steps,
            tw.problems.problems, tw.problems.sample_problem)            # + every nblib module they import
    key = {**asdict(cfg), "weights": checkpoint_fingerprints([cfg.small, cfg.large, cfg.mid])}
    return cache.cached("steer_frontier", key, compute, code=code, verbose=verbose)


def checkpoint_fingerprints(names) -> dict:
    """sha256 of each named task model's checkpoint files (weights and config), so a retrained model recomputes."""
    from .. import cache

    out = {}
    for name in names:
        if name is None:
            continue
        folder = tw.models.checkpoint_folder(name)
        out[name] = [cache.file_fingerprint(folder / f) for f in ("model.safetensors", "config.json")
                     if (folder / f).exists()]
    return out


# ----------------------------------------------------------------------------- reading the frontier
def method_points(fr: Frontier, method: str):
    """One method's points, in threshold order."""
    return fr.points[fr.points.method == method].sort_values("t").reset_index(drop=True)


def large_point(fr: Frontier) -> dict:
    """Large-only: STEER's top threshold."""
    return method_points(fr, "STEER").iloc[-1].to_dict()


def at_large_minus(fr: Frontier, method: str, points: float = 1.0) -> dict:
    """The lowest threshold of `method` whose accuracy is within `points` (percentage points) of large-only."""
    big = large_point(fr)
    pts = method_points(fr, method)
    ok = pts[pts.accuracy >= big["accuracy"] - points / 100 - 1e-12]
    row = ok.iloc[0].to_dict() if len(ok) else pts.iloc[-1].to_dict()
    row["flops_saved"] = 1.0 - row["flops"] / big["flops"]
    return row


def best(fr: Frontier, method: str = "STEER") -> dict:
    """The most accurate point of a method (the cheapest among ties)."""
    pts = method_points(fr, method)
    top = pts[pts.accuracy == pts.accuracy.max()].sort_values("flops")
    return top.iloc[0].to_dict()


def bootstrap_accuracy(fr: Frontier, method: str, t: int, n: int = 1000, seed: int = 0) -> tuple[float, float]:
    """A 95 % bootstrap interval of one point's accuracy (over test problems)."""
    c = fr.per_problem[(fr.per_problem.method == method) & (fr.per_problem.t == t)]["correct"].to_numpy(float)
    rng = np.random.default_rng(seed)
    means = rng.choice(c, (n, len(c))).mean(1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def summary(fr: Frontier) -> dict:
    """The benchmark's headline numbers for one frontier."""
    big = large_point(fr)
    st, q, r = (at_large_minus(fr, m) for m in ("STEER", "query routing", "random steps"))
    return {"large_accuracy": round(float(big["accuracy"]), 4),
            "small_accuracy": round(float(method_points(fr, "STEER").iloc[0]["accuracy"]), 4),
            "steer_accuracy_at_best": round(float(best(fr)["accuracy"]), 4),
            "steer_flops_saved_at_large_minus_1pt": round(float(st["flops_saved"]), 4),
            "query_routing_flops_saved_at_large_minus_1pt": round(float(q["flops_saved"]), 4),
            "random_flops_saved_at_large_minus_1pt": round(float(r["flops_saved"]), 4),
            "large_steps_share_at_that_threshold": round(float(st["large_share"]), 4),
            "steer_threshold_at_large_minus_1pt": round(float(st["threshold"]), 6),
            "steer_accuracy_at_that_threshold": round(float(st["accuracy"]), 4)}


def compare_scores(small_name: str = "tiny", large_name: str = "large", n: int = 100, seed: int = 0,
                   reads=(("max_prob", 1, "first"), ("max_logit", 1, "first"), ("neg_entropy", 1, "first"),
                          ("max_prob", 4, "min"), ("max_prob", 16, "mean"), ("max_logit", 16, "mean"),
                          ("neg_entropy", 16, "min"), ("max_prob", 16, "min"))):
    """AUROC of each confidence read for 'the small model's step is valid', on its own small-only solutions."""
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    small = tw.load_model(small_name)
    probs = tw.problems.problems("val", n, seed)
    rows = []
    for score, la, how in reads:
        router = Router(small, small, TaskVocab(), config=RouterConfig(score, la, how))
        runs = router.run([tw.prompt_of(p) for p in probs], [0.0])[0]
        y, c = [], []
        for p, r in zip(probs, runs, strict=False):
            checks = tw.problems.check_solution(p, r.text)
            for k, s in enumerate(r.steps[:len(checks)]):
                y.append(checks[k].valid)
                c.append(s.score)
        rows.append({"score": score, "tokens read": la, "aggregate": how, "AUROC (valid step)": roc_auc_score(y, c),
                     "steps": len(y)})
    return pd.DataFrame(rows)
