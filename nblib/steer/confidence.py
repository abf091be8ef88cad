"""Confidence from the small model's logits before a step, and its calibration into a probability.

Scores read the next-token logits z (at the step's first token, and optionally
averaged over the first few tokens the small model drafts): `max_prob`
(max softmax p), `max_logit` (max z), `neg_entropy` (sum p log p), `margin`
(p1 - p2). `Calibrator` fits a two-component 1-D Gaussian mixture by EM
(scikit-learn, tied variance) on a pool of unlabeled step scores and maps a
score to the posterior of the high-confidence component, clamped to be
non-decreasing in the score.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from .. import checks

SCORES = ("max_prob", "max_logit", "neg_entropy", "margin")


def check_score(name: str) -> str:
    """Return the score name, or raise a ValueError listing the ones there are."""
    if name not in SCORES:
        raise ValueError(f"unknown confidence score {name!r}; scores are {SCORES}")
    return name


def score_logits(logits: torch.Tensor, score: str = "max_prob") -> torch.Tensor:
    """Confidence of next-token logits (..., V) -> (...): max_prob, max_logit, neg_entropy or margin."""
    check_score(score)
    z = logits.float()
    if score == "max_logit":
        return z.max(-1).values
    logp = torch.log_softmax(z, -1)
    p = logp.exp()
    if score == "max_prob":
        return p.max(-1).values
    if score == "neg_entropy":
        return (p * logp).nan_to_num(0.0).sum(-1)
    top2 = p.topk(2, dim=-1).values
    return top2[..., 0] - top2[..., 1]


def aggregate(scores: Sequence[float], how: str = "mean") -> float:
    """One step's confidence from its first tokens' scores: 'mean' (default), 'min' or 'first'."""
    checks.one_of("how", how, ("mean", "min", "first"))
    try:
        x = np.asarray(scores, dtype=float).ravel()
    except (TypeError, ValueError):
        raise checks.BadArgument(f"scores must be a list of token scores (numbers), got "
                                 f"{checks.short(scores)}") from None
    if np.ndim(scores) == 0 or not x.size:
        raise checks.BadArgument(f"scores is empty or not a list: no token scores to aggregate, got "
                                 f"{checks.short(scores)}")
    if not np.isfinite(x).all():
        raise checks.BadArgument(f"scores must be finite: {int((~np.isfinite(x)).sum())} of {x.size} token scores "
                                 "are NaN or inf")
    if how == "mean":
        return float(np.mean(scores))
    if how == "min":
        return float(np.min(scores))
    if how == "first":
        return float(scores[0])
    raise ValueError(f"unknown aggregation {how!r}; use 'mean', 'min' or 'first'")


@dataclass
class Calibrator:
    """A 2-component 1-D Gaussian mixture (EM, tied variance) over raw scores; `posterior` is P(high | score)."""

    tol: float = 1e-4
    max_iter: int = 100
    tied: bool = True
    means_: tuple[float, float] = field(default=(0.0, 1.0), init=False)
    stds_: tuple[float, float] = field(default=(1.0, 1.0), init=False)
    weights_: tuple[float, float] = field(default=(0.5, 0.5), init=False)
    n_iter_: int = field(default=0, init=False)
    fitted: bool = field(default=False, init=False)

    def fit(self, scores: Sequence[float]) -> "Calibrator":
        """Fit the mixture by EM, initialised at the 25th / 75th percentiles; 'hi' is the larger mean."""
        from sklearn.mixture import GaussianMixture

        try:
            x = np.asarray(scores, dtype=float).reshape(-1, 1)
        except (TypeError, ValueError):
            raise checks.BadArgument(f"calibration needs at least 4 finite scores (numbers), got "
                                     f"{checks.short(scores)}") from None
        if len(x) < 4 or not np.isfinite(x).all():
            raise ValueError(f"calibration needs at least 4 finite scores, got {len(x)}")
        with np.errstate(over="ignore"):
            squares = float(x[:, 0] @ x[:, 0])
        if not np.isfinite(squares):
            raise checks.BadArgument(f"calibration scores are too large to fit a mixture (largest |score| "
                                     f"{float(np.abs(x).max()):.3g}): pass raw confidence scores, not overflowed ones")
        if np.ptp(x) == 0:
            raise ValueError("all calibration scores are equal: a mixture cannot separate easy from hard steps")
        init = np.percentile(x[:, 0], [25, 75]).reshape(2, 1)
        if init[0, 0] == init[1, 0]:
            init = np.array([[x.min()], [x.max()]])
        gm = GaussianMixture(2, covariance_type="tied" if self.tied else "full", tol=self.tol,
                             max_iter=self.max_iter, means_init=init, reg_covar=1e-6 * float(np.var(x) + 1e-12),
                             random_state=0).fit(x)
        order = np.argsort(gm.means_[:, 0])
        cov = gm.covariances_
        var = [float(cov[0, 0])] * 2 if self.tied else [float(cov[i][0, 0]) for i in order]
        self.means_ = tuple(float(gm.means_[i, 0]) for i in order)
        self.stds_ = tuple(float(np.sqrt(v)) for v in var)
        self.weights_ = tuple(float(gm.weights_[i]) for i in order)
        self.n_iter_ = int(gm.n_iter_)
        self.fitted = True
        return self

    def posterior(self, scores) -> np.ndarray:
        """P(high-confidence component | score), in [0, 1], non-decreasing in the score."""
        if not self.fitted:
            raise ValueError("the calibrator is not fitted: call .fit(pool_of_scores) first")
        try:
            c = np.asarray(scores, dtype=float)
        except (TypeError, ValueError):
            raise checks.BadArgument(f"scores must be numbers (raw confidence scores), got "
                                     f"{checks.short(scores)}") from None
        if not np.isfinite(c).all():
            raise checks.BadArgument(f"scores must be finite: {int(np.size(c) - np.isfinite(c).sum())} of "
                                     f"{np.size(c)} are NaN or inf; a step without a score has no routing value")
        pi = self._posterior(c)
        m1 = self.means_[1]
        if not self.tied:  # unequal variances: the posterior may fall again in the far tail; clamp it there
            pi = np.where(c > m1, np.maximum(pi, self.posterior_at(m1)), pi)
        return pi

    def posterior_at(self, c: float) -> float:
        """The posterior at one score (no clamping)."""
        return float(self._posterior(np.asarray(c, dtype=float)))

    def _posterior(self, c: np.ndarray) -> np.ndarray:
        """P(high | c) from the log-density difference l0 - l1, stable for any finite score: with one variance
        the quadratic terms cancel exactly (l0 - l1 is linear in c); far out, where the squares overflow, the
        component with the wider spread takes the tail."""
        (m0, m1), (s0, s1), (w0, w1) = self.means_, self.stds_, self.weights_
        with np.errstate(over="ignore", invalid="ignore"):
            if s0 == s1:
                d = np.log(w0 / w1) + (m1 - m0) * (m0 + m1 - 2 * c) / (2 * s0 ** 2)
                d = np.where(np.isnan(d), np.log(w0 / w1), d)     # equal means: the weights alone decide
            else:
                d = (np.log(w0) - np.log(s0) - 0.5 * ((c - m0) / s0) ** 2) \
                    - (np.log(w1) - np.log(s1) - 0.5 * ((c - m1) / s1) ** 2)
                d = np.where(np.isnan(d), np.inf if s0 > s1 else -np.inf, d)
            return 1.0 / (1.0 + np.exp(np.clip(d, -700, 700)))

    def __call__(self, scores):
        """Same as `posterior`."""
        return self.posterior(scores)


class Identity:
    """No calibration: the raw score is the routing value (for scores already in [0, 1], e.g. max_prob)."""

    fitted = True

    def posterior(self, scores) -> np.ndarray:
        """The scores themselves, clipped to [0, 1]."""
        return np.clip(np.asarray(scores, dtype=float), 0.0, 1.0)

    def __call__(self, scores):
        """Same as `posterior`."""
        return self.posterior(scores)
