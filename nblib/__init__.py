"""Inference Cost Lab: the real code behind the notebooks.

One concept per module: `cost` (the ledger), `cache` (exists-or-compute),
`zoo` (embedded and user models), `llm` (one protocol for language models),
`sweep` (precomputed cost grids), `widgets` / `plots` (slider panels, figures);
the task world (`tasks`, `taskmodels`); KOALA (`koala`, `koala_train`,
`koala_widgets`); CAST (`cast`, `cast_cost`, `draft`, `cast_bench`, `cast_viz`).
"""
from __future__ import annotations

import os
import random

__version__ = "0.1.0"

QUICK_ENV = "NBLIB_QUICK"


def quick() -> bool:
    """Return True when the quick (CI) mode is on: NBLIB_QUICK=1 shrinks every workload."""
    return os.environ.get(QUICK_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def setup(seed: int = 0, threads: int | None = None) -> dict:
    """Seed python/numpy/torch and set torch's thread count; return what was set."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if threads is not None:
        torch.set_num_threads(threads)
    return {"seed": seed, "torch_threads": torch.get_num_threads(), "quick": quick()}
