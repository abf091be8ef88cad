"""Fixtures for HierRouter: a scripted pool over task-world problems (no model weights), and its cache."""
from __future__ import annotations

import numpy as np
import pytest

from nblib import hierrouter as H
from nblib.hierrouter.synthetic import right_at, right_step, wrong_step
from nblib.taskworld import problems as T


class PricedKinds(H.KindFeatures):
    """The hand features with a price: 2 FLOPs per token read (to test that the encoder's cost is charged)."""

    name = "hand:kind:priced"
    flops_per_token = 2.0


@pytest.fixture
def problems3():
    return T.problems("train", 12, seed=3, n_steps=3)


@pytest.fixture
def mixed():
    """Problems of 2 to 5 steps."""
    return [p for n in (2, 3, 4, 5) for p in T.problems("train", 3, seed=5, n_steps=n)]


def scripted_pool():
    """'good' (always right, 10 FLOPs/token), 'bad' (always off, 1), 'mid' (right at hop 0 only, 3)."""
    return [H.ScriptedStepModel("good", right_step, 10.0), H.ScriptedStepModel("bad", wrong_step, 1.0),
            H.ScriptedStepModel("mid", right_at({0}), 3.0)]


@pytest.fixture
def scripted_cache():
    return H.StepCache(scripted_pool(), PricedKinds())


@pytest.fixture
def rng():
    return np.random.default_rng(0)
