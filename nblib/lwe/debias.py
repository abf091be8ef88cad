"""A position-debiased verdict (an adaptation, not in the LWE paper): contextual calibration of the log-prob judge.

The log-prob judge scores the vanilla prompt in one order: margin m = log P("A") - log P("B") after "[[".
A judge with position bias adds a roughly constant prior b to every margin (it prefers whichever answer is
shown first). Contextual calibration (Zhao et al., ICML 2021) measures that prior on *content-free* inputs
(here: question and both answers "N/A", "[MASK]", or blank, where no answer can be better) and subtracts it:
the debiased verdict in one order is "A" when m - b > 0. A second, label-free estimate of b comes from the
swapped pairs themselves: a judge without position bias has m_swapped = -m, so b is the mean of
(m + m_swapped) / 2 (cross-fitted: each case's prior comes from the other cases).

With b subtracted, whether a case's two per-order verdicts agree varies from case to case, which is what
Selective LWE's gate needs (`JudgeConfig(gate="debiased")`). With a flat prior (b = 0) the debiased verdict
is the raw per-order verdict.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .. import checks
from . import prompts
from .parse import flip

CONTENT_FREE = ("N/A", "[MASK]", " ")     # the content-free inputs of contextual calibration


def verdict(margin: float, prior: float = 0.0) -> str:
    """The per-order verdict after subtracting the position prior: "A" when margin - prior > 0, else "B"."""
    margin = checks.number("margin", margin)
    prior = checks.number("prior", prior, hint="the position prior in nats (0: flat)")
    return "A" if margin - prior > 0 else "B"


def content_free_prompts(max_chars: int = 600) -> list[list[dict]]:
    """The vanilla judge's prompt with a content-free question and answers, one per content-free input."""
    return [prompts.vanilla(prompts.example_block(x, x, x, max_chars)) for x in CONTENT_FREE]


def content_free_prior(caller, max_chars: int = 600, role: str = "check") -> tuple[float | None, str | None]:
    """The position prior b measured on content-free pairs (mean margin), or (None, why not); one pass each."""
    ms = []
    for msgs in content_free_prompts(max_chars):
        m, why = caller.margin(msgs, prompts.SCORE_CONTINUATION, role=role)
        if m is None:
            return None, why
        ms.append(m)
    return float(np.mean(ms)), None


def swap_prior(margins, swap_margins) -> float:
    """The position prior from swapped pairs: mean of (m + m_swapped) / 2 (no labels read)."""
    m, s = np.asarray(margins, float), np.asarray(swap_margins, float)
    if m.size == 0 or m.shape != s.shape:
        raise checks.BadArgument(f"swap_prior needs margins in both orders for the same cases, got {m.size} and {s.size}")
    if not (np.isfinite(m).all() and np.isfinite(s).all()):
        raise checks.BadArgument("swap_prior needs finite margins (log-prob differences): got NaN or inf in "
                                 f"{'margins' if not np.isfinite(m).all() else 'swap_margins'}; drop those cases")
    return float(np.mean((m + s) / 2))


def cross_fitted_swap_priors(margins, swap_margins, folds: int = 2) -> np.ndarray:
    """Each case's swap prior estimated on the other folds (case i is in fold i mod `folds`)."""
    checks.whole("folds", folds, low=2)
    m, s = np.asarray(margins, float), np.asarray(swap_margins, float)
    fold = np.arange(m.size) % folds
    out = np.empty(m.size)
    for f in range(folds):
        out[fold == f] = swap_prior(m[fold != f], s[fold != f])
    return out


def per_order(rec, prior=0.0, label: str = "per-order"):
    """A log-prob run re-read one order at a time: each order's verdict is `verdict(margin, prior)`.

    `rec` is a "logprob" RunRecord (margins in both orders); `prior` a number or one per case. The result is a
    RunRecord (method "logprob", config["verdict"] = label) whose consistency is the per-order agreement.
    """
    if rec.method != "logprob":
        raise checks.BadArgument(f"per_order needs a 'logprob' run (margins in both orders), got a {rec.method!r} run")
    priors = np.broadcast_to(np.asarray(prior, float), (rec.n,))
    rows = []
    for r, b in zip(rec.cases, priors):
        m_o = r["margin"]
        m_s = _swap_margin(r)
        if m_o is None or m_s is None:
            rows.append({**r, "verdict": None, "swap_verdict": None, "verdict_from": "none"})
            continue
        v, vs = verdict(m_o, b), verdict(m_s, b)
        rows.append({**r, "verdict": v, "swap_verdict": vs, "verdict_from": "debiased" if b else "logprob",
                     "prior": float(b), "consistent": v == flip(vs)})
    return dataclasses.replace(rec, cases=rows, config={**rec.config, "verdict": label})


def _swap_margin(row: dict):
    return row.get("swap_margin")


def margins(rec) -> tuple[np.ndarray, np.ndarray]:
    """The per-order margins (original, swapped) of a log-prob run's cases."""
    return (np.array([r["margin"] for r in rec.cases], float),
            np.array([_swap_margin(r) for r in rec.cases], float))


def inconsistent_share(rec, prior=0.0) -> float:
    """r: the share of cases whose per-order verdicts (after subtracting `prior`) do not flip with the order."""
    d = per_order(rec, prior)
    return float(np.mean([not r.get("consistent", False) for r in d.cases])) if d.n else float("nan")


def decompose(rec) -> dict:
    """Split a log-prob run's margins into the part that flips with the answers and the part that does not.

    Per case, content = (m − m_swapped) / 2 flips sign when the answers swap places; position = (m + m_swapped) / 2
    does not (it is that case's own position preference). A single prior b removes the mean position
    preference only: a case is swap-consistent after debiasing when |content| > |position − b|, so the gate
    selects few cases when the content spread is small beside the position spread. Returns the spreads
    (standard deviations, nats), the mean position preference, and the share of cases whose |content|
    exceeds |position − mean|.
    """
    m, s = margins(rec)
    ok = np.isfinite(m) & np.isfinite(s)
    if not ok.any():
        raise checks.BadArgument("decompose needs cases with margins in both orders (a 'logprob' run); got none")
    content, position = (m[ok] - s[ok]) / 2, (m[ok] + s[ok]) / 2
    b = float(position.mean())
    return {"n": int(ok.sum()), "content_sd": float(content.std()), "position_sd": float(position.std()),
            "position_mean": b, "content_over_position_sd": float(content.std() / max(position.std(), 1e-12)),
            "content_wins": float(np.mean(np.abs(content) > np.abs(position - b)))}
