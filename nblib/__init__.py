"""Inference Cost Lab: the real code behind the notebooks.

The foundation every notebook shares sits at the top: `cost` (the ledger),
`cache` (exists-or-compute, keyed by config and code version), `zoo` (embedded
and user models), `llm` (one protocol for language models), `panel` (the
slider-panel base), `style` (the suite's figure and table look), `prose`
(sentences and verdicts computed from results) and `training` (one training loop). Each notebook has its own package, and imports that one:
`measuring` (00), `taskworld` (00b; STEER, HierRouter and C3PO build on it),
`koala` (01), `d2dmoe` (02), `lwe` (03), `steer` (04), `hierrouter` (05), `c3po` (06), `cast` (07). CONTRIBUTING.md says how to add one.
"""
from __future__ import annotations

import os
import random

__version__ = "0.1.0"

QUICK_ENV = "NBLIB_QUICK"


def env_flag(name: str) -> bool:
    """True when the environment variable `name` is set to 1 / true / yes / on (any case)."""
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def quick() -> bool:
    """Return True when the quick (CI) mode is on: NBLIB_QUICK=1 shrinks every workload."""
    return env_flag(QUICK_ENV)


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


def progress(iterable=None, *, enabled: bool = True, **kwargs):
    """A tqdm.auto progress bar, off when `enabled` is False or TQDM_DISABLE is set (tqdm.notebook ignores it)."""
    from tqdm.auto import tqdm

    off = not enabled or env_flag("TQDM_DISABLE")
    return tqdm(iterable, disable=off, **kwargs)

