"""Fixtures for HierRouter: a scripted pool over task-world problems (no model weights), and its cache."""
from __future__ import annotations

import pytest

from nblib import hierrouter as H
from nblib.hierrouter.synthetic import right_at, right_step, wrong_step
from nblib.taskworld import problems as T


@pytest.fixture
def problems3():
    return T.problems("train", 12, seed=3, n_steps=3)


@pytest.fixture
def scripted_cache():
    """Three scripted models: 'good' (always right, 10 FLOPs/token), 'bad' (always off, 1), 'mid' (right at hop 0, 3)."""
    pool = [H.ScriptedStepModel("good", right_step, 10.0), H.ScriptedStepModel("bad", wrong_step, 1.0),
            H.ScriptedStepModel("mid", right_at({0}), 3.0)]
    return H.StepCache(pool, H.KindFeatures())
