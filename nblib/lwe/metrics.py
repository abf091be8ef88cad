"""Judge metrics, read from a `RunRecord`'s rows: accuracy, swap accuracy, consistency, pair accuracy, calls.

The label enters here and only here. Consistency is "valid in both orders and the verdict flips with the
answers" (a log-prob fallback that averages both orders is consistent by construction, so
`strict_consistency` counts parsed verdicts only: the gate Selective LWE uses); pair accuracy is "right in both orders". A method that has no swapped verdict (LWE without its
swapped run) has no consistency. Intervals are percentile bootstraps over cases (seeded).
"""
from __future__ import annotations

import numpy as np

from .. import checks
from .parse import flip


def _arrays(rec) -> dict:
    rows = rec.cases
    better = np.array([r["better"] for r in rows])
    v = np.array([r["verdict"] or "-" for r in rows])
    s = np.array([r["swap_verdict"] or "-" for r in rows])
    has_swap = any(r["swap_verdict"] is not None or r.get("swap_outcome") is not None for r in rows)
    flipped = np.array([flip(b) for b in better])
    return {"correct": v == better, "swap_correct": s == flipped,
            "consistent": (v != "-") & (s != "-") & (s == np.array([flip(x) or "-" for x in v])),
            "has_swap": has_swap, "said_a": v == "A", "swap_said_a": s == "A",
            "fallback": np.array([r["verdict_from"] == "logprob" for r in rows]),
            "strict": np.array([r["verdict_from"] == "parse" and r.get("swap_verdict_from") == "parse"
                                and r["swap_verdict"] == flip(r["verdict"]) for r in rows]),
            "none": np.array([r["verdict_from"] == "none" for r in rows])}


def bootstrap(values, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-case values ((nan, nan) for no values)."""
    n_boot = checks.whole("n_boot", n_boot, low=1, high=checks.MAX_RESAMPLES)
    level = checks.number("level", level, 0, 1, low_open=True, high_open=True, hint="the interval's coverage")
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return float("nan"), float("nan")
    if not np.isfinite(x).all():
        raise checks.BadArgument(f"values must be finite: {int((~np.isfinite(x)).sum())} of {x.size} are NaN or inf")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def paired_difference(rec_a, rec_b, n_boot: int = 2000, seed: int = 0) -> dict:
    """Accuracy of a minus accuracy of b on the same cases, with a paired bootstrap interval."""
    ids_a = [r["id"] for r in rec_a.cases]
    by_b = {r["id"]: r for r in rec_b.cases}
    common = [i for i in ids_a if i in by_b]
    if not common:
        raise ValueError("the two runs share no case: judge the same stream with both")
    by_a = {r["id"]: r for r in rec_a.cases}
    d = np.array([float(by_a[i]["verdict"] == by_a[i]["better"]) - float(by_b[i]["verdict"] == by_b[i]["better"])
                  for i in common])
    lo, hi = bootstrap(d, n_boot, seed)
    return {"difference": float(d.mean()), "lo": lo, "hi": hi, "n": len(common)}


def summarize(rec, n_boot: int = 2000, seed: int = 0) -> dict:
    """Every metric of one run (accuracy with its interval, consistency, pair accuracy, calls and tokens per case)."""
    a = _arrays(rec)
    n = rec.n
    acc_lo, acc_hi = bootstrap(a["correct"], n_boot, seed)
    out = {"method": rec.method, "n": n, "accuracy": float(a["correct"].mean()) if n else float("nan"),
           "accuracy_lo": acc_lo, "accuracy_hi": acc_hi,
           "swap_accuracy": float(a["swap_correct"].mean()) if a["has_swap"] else float("nan"),
           "consistency": float(a["consistent"].mean()) if a["has_swap"] else float("nan"),
           "strict_consistency": float(a["strict"].mean()) if a["has_swap"] else float("nan"),
           "pair_accuracy": float((a["correct"] & a["swap_correct"]).mean()) if a["has_swap"] else float("nan"),
           "said_a": float(a["said_a"].mean()) if n else float("nan"),
           "fallback_share": float(a["fallback"].mean()) if n else float("nan"),
           "no_verdict_share": float(a["none"].mean()) if n else float("nan"),
           "calls_per_case": rec.calls_per_case(),
           "score_passes_per_case": rec.calls.get("score", 0) / n if n else float("nan"),
           "tokens_per_case": (sum(t["prompt"] + t["completion"] for t in rec.tokens.values()) / n) if n else float("nan"),
           "model_s_per_case": rec.wall_s / n if n else float("nan"),
           "updates": sum(1 for h in rec.meta_history if h.get("reason") != "initial"),
           "accepted_updates": sum(1 for h in rec.meta_history if h.get("reason") == "accepted"),
           "status": rec.status}
    if rec.method == "selective":
        used = [r.get("used_lwe", False) for r in rec.cases]
        out["inconsistent_share"] = float(np.mean(used)) if n else float("nan")
    cons = [r["verdict"] is not None and r["swap_verdict"] is not None for r in rec.cases]
    out["both_orders_valid"] = float(np.mean(cons)) if (n and a["has_swap"]) else float("nan")
    return out


def cumulative_accuracy(rec) -> np.ndarray:
    """Running accuracy after each case of the stream (how the paper logs it)."""
    c = _arrays(rec)["correct"].astype(float)
    return np.cumsum(c) / np.arange(1, len(c) + 1) if len(c) else c
