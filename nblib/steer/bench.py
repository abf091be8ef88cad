"""The measured frontier: a threshold grid of routed runs and every baseline, once, cached, under three accountings.

`frontier(cfg)` measures, on the task world v2 ladder, the AUROC of each confidence read (the paper's first
token; the first result digit; every result digit; the whole-step draft) against step validity on the small
model's own solutions of validation problems, picks the best (or the one named), calibrates it on the same
(unlabeled) pool, routes the test problems at every threshold of the grid (one pass, `Router.run`), and in
the same run measures small-only, large-only, mid as the small model, mid alone, query-level routing (the
whole problem to one model, decided by the small model's confidence on its first step) and random step
routing at the large-step shares STEER reached. Every run is condensed into one ledger row
(`accounting.ledger_row`: FLOPs with reads, generated-token FLOPs, forward passes per model), so the three
accountings (`accounting.ACCOUNTINGS`) and the per-query mixing line of small-only and large-only are read
from the same runs, never re-run. The latency profiles (this CPU, measured; a GPU roofline, modelled) ship
in the frontier and can be swapped (`profiles=`).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import taskworld as tw
from . import accounting as acc
from . import latency
from .confidence import Calibrator
from .engine import ConfidenceDecider, RandomDecider, RoutedRun, Router, RouterConfig
from .routing import threshold_grid
from .steps import TaskVocab

#: the confidence reads compared (name -> how); the first is the paper's, the others are adaptations
READS = {"paper: first token, max prob": RouterConfig("max_prob", 1, "first"),
         "paper: first token, max logit": RouterConfig("max_logit", 1, "first"),
         "first result digit": RouterConfig("max_prob", 16, "first", at="result"),
         "result digits (min)": RouterConfig("max_prob", 16, "min", at="result"),
         "whole-step draft (min)": RouterConfig("max_prob", 16, "min")}
PAPER_READ = "paper: first token, max prob"


def check_read(name: str) -> str:
    """Return a read's name ('best' or a key of READS), or raise a ValueError listing them."""
    if name != "best" and name not in READS:
        raise ValueError(f"unknown confidence read {name!r}; use 'best' or one of {list(READS)}")
    return name


@dataclass(frozen=True)
class FrontierConfig:
    """What one frontier measures: the pair, the splits, the confidence read and the grid."""

    small: str = "v2-tiny"
    large: str = "v2-large"
    mid: str | None = "v2-mid"       # also run STEER with this model as the small one (None: skip)
    n_test: int = 400
    n_calib: int = 200               # validation problems: the read's AUROC and the (unlabeled) calibration pool
    seed: int = 0
    n_thresholds: int = 25
    read: str = "best"               # 'best' (highest AUROC on the validation pool) or a key of READS
    batch_size: int = 64
    worked: int = 8                  # problems whose steps are kept in full for the notebook's drawings
    n_random: int = 13               # shares at which random step routing is run (STEER's, evenly subsampled)

    def __post_init__(self):
        check_read(self.read)


@dataclass
class Frontier:
    """The measured points of every method, per-problem ledger rows, worked problems, reads and the calibration."""

    config: FrontierConfig
    points: object                    # pandas DataFrame: one row per (method, threshold)
    per_problem: object               # pandas DataFrame: one row per (method, threshold, problem), a ledger row each
    calibrator: Calibrator
    pool_scores: list[float]
    pool_valid: list[bool]
    thresholds: list[float]
    worked: dict = field(default_factory=dict)  # threshold index -> list of step lists for the worked problems
    wall_s: dict = field(default_factory=dict)  # stage -> seconds (measured under whatever load there was)
    params: dict = field(default_factory=dict)  # model -> parameter count
    reads: object = None                        # DataFrame: AUROC of each read (the chosen one flagged)
    read: str = ""                              # the read STEER ran with
    profiles: dict = field(default_factory=dict)  # 'latency_cpu' / 'latency_gpu' -> LatencyProfile
    worked_ledgers: dict = field(default_factory=dict)  # threshold index -> [problem][step] -> ledger row

    @property
    def names(self) -> dict:
        """Role -> model name for the STEER pair."""
        return {"small": self.config.small, "large": self.config.large}


def run_rows(method: str, taus, runs_by_tau, problems, extra=None) -> list[dict]:
    """One per-problem row per (threshold, problem) of a routed run."""
    rows = []
    for j, (tau, runs) in enumerate(zip(taus, runs_by_tau, strict=False)):
        for i, (p, r) in enumerate(zip(problems, runs, strict=False)):
            rows.append(problem_row(method, j, tau, i, p, r, **(extra or {})))
    return rows


def problem_row(method: str, j: int, tau: float, i: int, p, r: RoutedRun, **extra) -> dict:
    """The cost (one ledger row) and outcome of one routed run, flat."""
    return {"method": method, "t": j, "threshold": tau, "problem": i, "level": tw.problems.V2_MIX.level_of(p),
            "correct": tw.problems.check_answer(p, r.text), "steps": len(r.steps), "large_steps": r.large_steps,
            "route": "".join("L" if s.author == "large" else "S" for s in r.steps),
            **acc.ledger_row(r.events), **extra}


def summarise(per_problem) -> object:
    """Mean accuracy and large-step share per (method, threshold) (costs: `costs`)."""
    g = per_problem.groupby(["method", "t"], sort=False)
    pts = g.agg(threshold=("threshold", "first"), accuracy=("correct", "mean"), steps=("steps", "sum"),
                large_steps=("large_steps", "sum"), n=("problem", "count"),
                flops=("flops_small", "mean")).reset_index()
    pts["flops"] = g.apply(lambda d: float((d.flops_small + d.flops_large).mean()), include_groups=False).values
    pts["large_share"] = pts["large_steps"] / pts["steps"].clip(lower=1)
    return pts


def steer_router(small, large, read: RouterConfig) -> Router:
    """The task-world router with a confidence read."""
    return Router(small, large, TaskVocab(), config=read)


def pool_of(router: Router, problems, drafted: list | None = None) -> tuple[list[float], list]:
    """The small model's scores at every boundary of its own (small-only) solutions, with each step's validity.

    A step's validity is checked given the total the previous line wrote (`check_solution`); the answer line
    is not a step and gets None (it stays in the unlabeled calibration pool, out of the AUROC).
    """
    runs = router.run([tw.prompt_of(p) for p in problems], [0.0])[0]
    scores, valid = [], []
    for p, r in zip(problems, runs, strict=False):
        checks = tw.problems.check_solution(p, r.text)
        for k, s in enumerate(r.steps):
            scores.append(float(s.score))
            valid.append(bool(checks[k].valid) if k < len(checks) else None)  # the answer line: not a step
            if drafted is not None:
                drafted.append(len(s.drafted))
    return scores, valid


def read_table(small, problems, reads: dict = READS) -> tuple[object, dict]:
    """AUROC of each confidence read for 'the small model's step is valid' on its own solutions; and the pools."""
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    rows, pools = [], {}
    for name, how in reads.items():
        drafted: list[int] = []
        scores, valid = pool_of(steer_router(small, small, how), problems, drafted)
        pools[name] = (scores, valid)
        y = [v for v in valid if v is not None]
        c = [sc for sc, v in zip(scores, valid, strict=True) if v is not None]
        auc = roc_auc_score(y, c) if 0 < sum(y) < len(y) else float("nan")
        rows.append({"read": name, "paper's": name.startswith("paper"), "how": how.label,
                     "tokens drafted": float(np.mean(drafted)), "AUROC (valid step)": float(auc),
                     "steps": len(y), "valid share": float(np.mean(y)) if y else float("nan")})
    return pd.DataFrame(rows), pools


def calibrate(router: Router, problems) -> tuple[Calibrator, list[float], list[bool]]:
    """Fit the GMM on the small model's step scores over unlabeled problems (small-only run)."""
    scores, valid = pool_of(router, problems)
    return Calibrator().fit(scores), scores, valid


def default_profiles(models: dict) -> dict:
    """The latency profiles: this CPU (measured now, one thread) and an H100 roofline 'as if' R2R's sizes."""
    return {"latency_cpu": latency.measure_cpu(models),
            "latency_gpu": latency.roofline({m: latency.AS_IF_PARAMS[m] for m in models
                                             if m in latency.AS_IF_PARAMS})}


def compute_frontier(cfg: FrontierConfig = FrontierConfig()) -> Frontier:
    """Measure every method's frontier (see the module docstring); not cached: `frontier` is."""
    import pandas as pd

    t_all = time.perf_counter()
    wall = {}
    small, large = tw.load_model(cfg.small), tw.load_model(cfg.large)
    mix = tw.problems.V2_MIX
    test = tw.problems.problems("test", cfg.n_test, cfg.seed, mix)
    calib_set = tw.problems.problems("val", cfg.n_calib, cfg.seed, mix)
    prompts = [tw.prompt_of(p) for p in test]
    t0 = time.perf_counter()
    reads, pools = read_table(small, calib_set)
    name = cfg.read if cfg.read != "best" else str(reads.loc[reads["AUROC (valid step)"].idxmax(), "read"])
    reads["chosen"] = reads.read == name
    wall["reads"] = time.perf_counter() - t0
    router = steer_router(small, large, READS[name])
    pool, pool_valid = pools[name]
    cal = Calibrator().fit(pool)
    taus = threshold_grid(cal.posterior(pool), cfg.n_thresholds)
    t0 = time.perf_counter()
    steer_runs = router.run(prompts, taus, ConfidenceDecider(cal), batch_size=cfg.batch_size)
    wall["steer_grid"] = time.perf_counter() - t0
    rows = run_rows("STEER", taus, steer_runs, test)
    n_w = min(cfg.worked, len(test))
    worked = {j: [[asdict(s) for s in runs[i].steps] for i in range(n_w)] for j, runs in enumerate(steer_runs)}
    worked_ledgers = {j: [[acc.ledger_row([e for e in runs[i].events if e.step == k])
                           for k in range(len(runs[i].steps))] for i in range(n_w)]
                      for j, runs in enumerate(steer_runs)}
    small_only, large_only = steer_runs[0], steer_runs[-1]
    # query-level routing: the small model's confidence on its first step sends the whole problem to one model
    for j, tau in enumerate(taus):
        for i, p in enumerate(test):
            s, lg = small_only[i], large_only[i]
            first = s.steps[0]
            go = tau >= 1.0 or first.value < tau
            base = problem_row("query routing", j, tau, i, p, lg if go else s)
            if go and tau < 1.0:  # it paid for the small model's read (and draft) of the first step before handing over
                paid = acc.ledger_row([e for e in s.events if e.step == 0 and e.model == "small"])
                base.update(acc.add_rows({k: base[k] for k in paid}, paid))
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
    models = {cfg.small: small, cfg.large: large}
    if cfg.mid:
        mid = tw.load_model(cfg.mid)
        models[cfg.mid] = mid
        mrouter = steer_router(mid, large, READS[name])
        mcal, mpool, _ = calibrate(mrouter, calib_set)
        mtaus = threshold_grid(mcal.posterior(mpool), cfg.n_thresholds)
        t0 = time.perf_counter()
        mruns = mrouter.run(prompts, mtaus, ConfidenceDecider(mcal), batch_size=cfg.batch_size)
        wall["mid_grid"] = time.perf_counter() - t0
        rows += run_rows(f"STEER ({cfg.mid} as small)", mtaus, mruns, test, {"small_name": cfg.mid})
        rows += run_rows(f"{cfg.mid} only", [0.0], [mruns[0]], test, {"small_name": cfg.mid})
        params[cfg.mid] = tw.models.shape_of(mid).params()
    per = pd.DataFrame(rows)
    if "small_name" in per:
        per["small_name"] = per["small_name"].fillna(cfg.small)
    else:
        per["small_name"] = cfg.small
    pts = summarise(per)
    t0 = time.perf_counter()
    profiles = default_profiles(models)
    wall["latency_profile"] = time.perf_counter() - t0
    wall["total"] = time.perf_counter() - t_all
    return Frontier(cfg, pts, per, cal, pool, pool_valid, taus, worked, wall, params, reads, name, profiles,
                    worked_ledgers)


def frontier(cfg: FrontierConfig = FrontierConfig(), verbose: bool = True) -> Frontier:
    """The frontier for this config, computed once and cached (keyed by config, the models' weights and the code)."""
    from .. import cache
    from . import confidence, engine, routing, steps

    def compute():
        return compute_frontier(cfg)

    code = (compute_frontier, read_table, pool_of, calibrate, run_rows, problem_row, summarise, engine, confidence,
            routing, steps, acc, latency, tw.problems.problems, tw.problems.sample_problem)
    key = {**asdict(cfg), "weights": checkpoint_fingerprints([cfg.small, cfg.large, cfg.mid])}
    return cache.cached("steer_frontier_v2", key, compute, code=code, verbose=verbose)


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
def method_points(fr: Frontier, method: str, accounting: str | None = None, profiles: dict | None = None):
    """One method's points, in threshold order (with `cost` and `rel`, its share of large-only's, when asked)."""
    pts = fr.points[fr.points.method == method].sort_values("t").reset_index(drop=True)
    if accounting is None:
        return pts
    c = costs(fr, accounting, profiles)
    c = c[c.method == method].sort_values("t").reset_index(drop=True)
    pts = pts.copy()
    pts["cost"] = c["cost"].to_numpy()
    pts["rel"] = pts["cost"] / large_cost(fr, accounting, profiles)
    return pts


def costs(fr: Frontier, accounting: str, profiles: dict | None = None):
    """Mean cost per problem of every (method, threshold) under one accounting: columns small, large, cost."""
    import pandas as pd

    acc.check_accounting(accounting)
    profiles = fr.profiles if profiles is None else profiles
    per = fr.per_problem
    if accounting in ("generated_flops", "flops_with_reads"):
        pre = "gen_flops_" if accounting == "generated_flops" else "flops_"
        out = per.groupby(["method", "t"], sort=False)[[pre + "small", pre + "large"]].mean().reset_index()
        out = out.rename(columns={pre + "small": "small", pre + "large": "large"})
        out["cost"] = out["small"] + out["large"]
        return out
    profile = profiles.get(accounting)
    if profile is None:
        raise acc.UnknownAccounting(f"the {accounting!r} accounting needs a latency profile; this frontier has "
                                    f"{sorted(profiles)}: pass profiles={{{accounting!r}: ...}}")
    from collections import Counter

    rows = []
    for (m, t), d in per.groupby(["method", "t"], sort=False):
        names = {"small": d["small_name"].iloc[0], "large": fr.config.large}
        profile.check(names.values())
        part = {}
        for role in ("small", "large"):
            tot: Counter = Counter()
            for h in d[f"calls_{role}"]:
                tot.update(h)
            part[role] = profile.price(names[role], dict(tot)) / len(d)
        rows.append({"method": m, "t": t, **part, "cost": part["small"] + part["large"]})
    return pd.DataFrame(rows)


def large_cost(fr: Frontier, accounting: str, profiles: dict | None = None) -> float:
    """Large-only's mean cost per problem under an accounting."""
    c = costs(fr, accounting, profiles)
    st = c[c.method == "STEER"].sort_values("t")
    return float(st["cost"].iloc[-1])


def large_point(fr: Frontier) -> dict:
    """Large-only: STEER's top threshold."""
    return method_points(fr, "STEER").iloc[-1].to_dict()


def small_point(fr: Frontier) -> dict:
    """Small-only: STEER's threshold 0."""
    return method_points(fr, "STEER").iloc[0].to_dict()


def at_large_minus(fr: Frontier, method: str, points: float = 1.0, accounting: str = "generated_flops",
                   profiles: dict | None = None) -> dict:
    """The lowest threshold of `method` whose accuracy is within `points` (percentage points) of large-only.

    `saved` is the share of large-only's cost it saves under `accounting`; `reached` is False when no point of
    the method comes within `points` (then the row is its top threshold).
    """
    big = large_point(fr)
    pts = method_points(fr, method, accounting, profiles)
    ok = pts[pts.accuracy >= big["accuracy"] - points / 100 - 1e-12]
    row = ok.iloc[0].to_dict() if len(ok) else pts.iloc[-1].to_dict()
    row["reached"] = bool(len(ok))
    row["saved"] = 1.0 - row["rel"]
    row["accounting"] = accounting
    return row


def mixing_line(fr: Frontier, accounting: str, profiles: dict | None = None, n: int = 21):
    """The per-query mix of small-only and large-only (a share w of problems to large): accuracy and cost."""
    import pandas as pd

    st = method_points(fr, "STEER", accounting, profiles)
    a0, a1, c0, c1 = st.accuracy.iloc[0], st.accuracy.iloc[-1], st.rel.iloc[0], st.rel.iloc[-1]
    w = np.linspace(0, 1, n)
    return pd.DataFrame({"w": w, "accuracy": (1 - w) * a0 + w * a1, "rel": (1 - w) * c0 + w * c1})


def mix_rel_at(fr: Frontier, accuracy: float, accounting: str, profiles: dict | None = None) -> float:
    """The mixing line's relative cost at an accuracy (clipped to its ends)."""
    st = method_points(fr, "STEER", accounting, profiles)
    a0, a1, c0, c1 = st.accuracy.iloc[0], st.accuracy.iloc[-1], st.rel.iloc[0], st.rel.iloc[-1]
    w = float(np.clip((accuracy - a0) / (a1 - a0), 0, 1)) if a1 != a0 else 1.0
    return float((1 - w) * c0 + w * c1)


def best(fr: Frontier, method: str = "STEER") -> dict:
    """The most accurate point of a method (the cheapest under FLOPs with reads among ties)."""
    pts = method_points(fr, method)
    top = pts[pts.accuracy == pts.accuracy.max()].sort_values("flops")
    return top.iloc[0].to_dict()


def bootstrap_accuracy(fr: Frontier, method: str, t: int, n: int = 1000, seed: int = 0) -> tuple[float, float]:
    """A 95 % bootstrap interval of one point's accuracy (over test problems)."""
    c = fr.per_problem[(fr.per_problem.method == method) & (fr.per_problem.t == t)]["correct"].to_numpy(float)
    return tw.metrics.bootstrap_interval(c, n_boot=n, seed=seed)


METHODS_SAVED = {"steer": "STEER", "query": "query routing", "random": "random steps"}


def methods_saved(fr: Frontier) -> dict:
    """The benchmark's methods by key: steer, query, random, and steer_mid when the frontier has the mid run."""
    out = dict(METHODS_SAVED)
    if fr.config.mid and f"STEER ({fr.config.mid} as small)" in set(fr.points.method):
        out["steer_mid"] = f"STEER ({fr.config.mid} as small)"
    return out


def summary(fr: Frontier, profiles: dict | None = None) -> dict:
    """The benchmark's headline numbers for one frontier, under every accounting."""
    big, small = large_point(fr), small_point(fr)
    saved, mix = {}, {}
    for a in acc.ACCOUNTINGS:
        saved[a] = {k: round(float(at_large_minus(fr, m, accounting=a, profiles=profiles)["saved"]), 4)
                    for k, m in methods_saved(fr).items()}
        mix[a] = round(1.0 - mix_rel_at(fr, big["accuracy"] - 0.01, a, profiles), 4)
    st = at_large_minus(fr, "STEER")
    reached = {k: bool(at_large_minus(fr, m)["reached"]) for k, m in methods_saved(fr).items()}
    auroc = fr.reads.set_index("read")["AUROC (valid step)"]
    return {"saved_at_large_minus_1pt": saved, "mixing_line_saved_at_large_minus_1pt": mix,
            "reached_large_minus_1pt": reached,
            "large_step_share": round(float(st["large_share"]), 4),
            "confidence_auroc": round(float(auroc[fr.read]), 4), "confidence_read": fr.read,
            "paper_read_auroc": round(float(auroc[PAPER_READ]), 4),
            "large_accuracy": round(float(big["accuracy"]), 4), "small_accuracy": round(float(small["accuracy"]), 4),
            "steer_accuracy_at_that_threshold": round(float(st["accuracy"]), 4),
            "steer_threshold_at_large_minus_1pt": round(float(st["threshold"]), 6),
            "steer_accuracy_at_best": round(float(best(fr)["accuracy"]), 4)}


def ratio_sheet(fr: Frontier, ratio: float, input_share: float = 0.25):
    """A price sheet for the pair: the large model's output token costs `ratio` x the small one's, inputs a share."""
    from ..checks import number
    from ..cost import PriceSheet

    ratio = number("ratio (large / small price per output token)", ratio, low=1.0)
    input_share = number("input_share (input price / output price)", input_share, low=0.0)
    models = [fr.config.small] + ([fr.config.mid] if fr.config.mid else []) + [fr.config.large]
    out = {fr.config.small: 1.0, fr.config.large: ratio}
    if fr.config.mid:
        out[fr.config.mid] = ratio ** 0.5       # between the two on a log scale
    return PriceSheet(f"ratio {ratio:g}x", "relative", tuple((m, out[m] * input_share) for m in models),
                      tuple((m, out[m]) for m in models),
                      f"the large model's token costs {ratio:g}x the small one's; input tokens {input_share:g}x output")


def priced(fr: Frontier, sheet):
    """Mean price per problem of every (method, threshold) through the price lens: columns small, large, cost.

    Each model's tokens are priced by the sheet: tokens it generated at the output price, tokens it read (the
    prompt, the other model's steps; KV caches kept, as with prompt caching) at the input price.
    """
    from ..cost import reprice

    per = fr.per_problem
    small = np.zeros(len(per))
    for name in per["small_name"].unique():
        mask = (per["small_name"] == name).to_numpy()
        c = reprice({name: (per["read_tokens_small"].to_numpy(), per["gen_tokens_small"].to_numpy())}, sheet)
        small = np.where(mask, c["total"], small)
    large = reprice({fr.config.large: (per["read_tokens_large"].to_numpy(), per["gen_tokens_large"].to_numpy())},
                    sheet)["total"]
    out = per[["method", "t"]].assign(small=small, large=large).groupby(["method", "t"], sort=False)[
        ["small", "large"]].mean().reset_index()
    out["cost"] = out["small"] + out["large"]
    return out


# ----------------------------------------------------------------------------- the shipped frontier
SHIPPED = "data/steer/frontier_v2.json.gz"
REBUILD = "python scripts/build_steer_frontier.py"
PER_PROBLEM_COLUMNS = ("method", "t", "threshold", "problem", "level", "correct", "steps", "large_steps", "route",
                       "small_name", "flops_small", "flops_large", "gen_flops_small", "gen_flops_large",
                       "gen_tokens_small", "gen_tokens_large", "read_tokens_small", "read_tokens_large",
                       "calls_small", "calls_large")


def save_frontier(fr: Frontier, path) -> None:
    """Write a frontier as gzipped JSON (columns, steps, calibration, profiles): no pickle, readable anywhere."""
    import gzip
    import json
    from pathlib import Path

    per = fr.per_problem
    cols = {}
    for c in PER_PROBLEM_COLUMNS:
        v = per[c].tolist()
        cols[c] = [{str(k): int(n) for k, n in h.items()} for h in v] if c.startswith("calls_") else v
    cal = fr.calibrator
    doc = {"config": asdict(fr.config), "per_problem": cols, "thresholds": fr.thresholds,
           "calibrator": {"means": cal.means_, "stds": cal.stds_, "weights": cal.weights_, "tied": cal.tied,
                          "n_iter": cal.n_iter_},
           "pool_scores": fr.pool_scores, "pool_valid": fr.pool_valid, "worked": {str(k): v for k, v in fr.worked.items()},
           "worked_ledgers": {str(k): v for k, v in fr.worked_ledgers.items()}, "wall_s": fr.wall_s,
           "params": fr.params, "reads": fr.reads.to_dict(orient="list"), "read": fr.read,
           "profiles": {k: p.to_json() for k, p in fr.profiles.items()}}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", compresslevel=9) as f:
        json.dump(doc, f, separators=(",", ":"), default=lambda o: o.item() if hasattr(o, "item") else str(o))


def load_frontier(path=None) -> Frontier:
    """Read a frontier written by `save_frontier` (default: the shipped one); a clear error when it is corrupt."""
    import gzip
    import json
    from pathlib import Path

    import pandas as pd

    from ..cache import CorruptArtefact

    path = Path(path) if path is not None else Path(__file__).resolve().parents[2] / SHIPPED
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; rebuild it with: {REBUILD}")
    try:
        with gzip.open(path, "rt") as f:
            doc = json.load(f)
        per = pd.DataFrame(doc["per_problem"])
        for c in ("calls_small", "calls_large"):
            per[c] = [{int(k): int(n) for k, n in h.items()} for h in per[c]]
        cal = Calibrator(tied=doc["calibrator"]["tied"])
        cal.means_, cal.stds_ = tuple(doc["calibrator"]["means"]), tuple(doc["calibrator"]["stds"])
        cal.weights_, cal.n_iter_, cal.fitted = tuple(doc["calibrator"]["weights"]), doc["calibrator"]["n_iter"], True
        profiles = {k: latency.LatencyProfile(p["name"], p["kind"], tuple(p["chunks"]),
                                              {m: tuple(s) for m, s in p["seconds"].items()}, p["note"], p["meta"])
                    for k, p in doc["profiles"].items()}
        return Frontier(FrontierConfig(**doc["config"]), summarise(per), per, cal, doc["pool_scores"],
                        doc["pool_valid"], doc["thresholds"], {int(k): v for k, v in doc["worked"].items()},
                        doc["wall_s"], doc["params"], pd.DataFrame(doc["reads"]), doc["read"], profiles,
                        {int(k): v for k, v in doc["worked_ledgers"].items()})
    except (OSError, EOFError, ValueError, KeyError, TypeError) as e:
        raise CorruptArtefact(f"{path} is not a readable STEER frontier (corrupt or truncated: {type(e).__name__}: "
                              f"{str(e)[:160]}); rebuild it with: {REBUILD}") from None


def frontier_or_shipped(cfg: FrontierConfig, run_full: bool = False, verbose: bool = True) -> Frontier:
    """The shipped frontier when `cfg` is the one it was measured with (and not `run_full`); else `frontier(cfg)`."""
    if not run_full:
        try:
            fr = load_frontier()
        except FileNotFoundError:
            fr = None
        if fr is not None and fr.config == cfg:
            return fr
    return frontier(cfg, verbose=verbose)
