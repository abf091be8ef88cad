"""Confidence scores, the GMM calibration, the threshold grid."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from nblib import steer


def test_scores_of_known_logits():
    z = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    p = torch.softmax(z, -1)
    assert torch.allclose(steer.score_logits(z, "max_logit"), torch.tensor([2.0, 0.0]))
    assert torch.allclose(steer.score_logits(z, "max_prob"), p.max(-1).values)
    assert torch.allclose(steer.score_logits(z, "neg_entropy"), (p * p.log()).sum(-1))
    assert steer.score_logits(z, "margin")[1] == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="unknown confidence score"):
        steer.score_logits(z, "entropy")


def test_gmm_recovers_a_bimodal_sample_and_is_monotone():
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(0.3, 0.05, 600), rng.normal(0.8, 0.05, 400)]
    cal = steer.Calibrator().fit(x)
    assert cal.means_ == pytest.approx((0.3, 0.8), abs=0.02)
    assert cal.weights_ == pytest.approx((0.6, 0.4), abs=0.05)
    grid = np.linspace(-1, 2, 500)
    pi = cal.posterior(grid)
    assert ((pi >= 0) & (pi <= 1)).all() and (np.diff(pi) >= -1e-12).all()
    assert cal.posterior([0.3])[0] < 0.05 and cal.posterior([0.8])[0] > 0.95


def test_untied_posterior_never_falls_in_the_tail():
    rng = np.random.default_rng(1)
    x = np.r_[rng.normal(0.0, 1.0, 500), rng.normal(3.0, 0.2, 500)]
    cal = steer.Calibrator(tied=False).fit(x)
    tail = cal.posterior(np.linspace(cal.means_[1], 20, 200))
    assert tail.min() >= cal.posterior_at(cal.means_[1]) - 1e-12


def test_decisions_are_invariant_to_an_affine_rescaling():
    rng = np.random.default_rng(2)
    x = np.r_[rng.normal(0.4, 0.1, 300), rng.normal(0.9, 0.05, 300)]
    a, b = steer.Calibrator().fit(x), steer.Calibrator().fit(3.0 * x - 7.0)
    for tau in (0.1, 0.5, 0.9):
        assert ((a.posterior(x) < tau) == (b.posterior(3.0 * x - 7.0) < tau)).mean() > 0.995


def test_calibration_needs_spread():
    with pytest.raises(ValueError, match="equal"):
        steer.Calibrator().fit([0.5] * 10)
    with pytest.raises(ValueError, match="not fitted"):
        steer.Calibrator().posterior([0.5])


def test_threshold_grid_has_exact_endpoints():
    grid = steer.threshold_grid(np.random.default_rng(3).random(500), 25)
    assert len(grid) == 25 and grid[0] == 0.0 and grid[-1] == 1.0
    assert all(a <= b for a, b in zip(grid, grid[1:], strict=False))
    with pytest.raises(ValueError):
        steer.threshold_grid([0.5], 1)


def test_routing_rule_endpoints():
    assert not steer.goes_large(0.0, 0.0) and not steer.goes_large(None, 0.5)
    assert steer.goes_large(1.0, 1.0) and steer.goes_large(0.2, 0.5) and not steer.goes_large(0.7, 0.5)
    for bad in (-1e-9, 1.0000001, float("inf"), True):
        with pytest.raises(ValueError, match="threshold"):
            steer.check_threshold(bad)


def test_threshold_grid_refuses_nan_and_inf_instead_of_returning_nans():
    """Issue 23: threshold_grid([0.2, nan, 0.9], 5) returned NaN thresholds."""
    for bad in ([0.2, float("nan"), 0.9], [0.2, float("inf")]):
        with pytest.raises(ValueError, match=r"pool_values must be finite: 1 of \d are NaN or inf"):
            steer.threshold_grid(bad, 5)
    with pytest.raises(ValueError, match="pool_values .* is empty"):
        steer.threshold_grid([], 5)
    assert steer.threshold_grid(np.array([0.2, 0.5, 0.9]), np.int64(3)) == steer.threshold_grid([0.2, 0.5, 0.9], 3)
