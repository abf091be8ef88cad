"""Exists-or-compute artefacts in a user cache folder, keyed by a hash of a frozen config."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import joblib

CACHE_ENV = "NBLIB_CACHE"


def cache_dir() -> Path:
    """Return the user cache folder ($NBLIB_CACHE, else ~/.cache/nblib), creating it."""
    root = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "nblib")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _plain(obj: Any) -> Any:
    """Turn dataclasses, tuples and paths into JSON-able values for hashing."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"__dc__": type(obj).__name__, **{k: _plain(v) for k, v in dataclasses.asdict(obj).items()}}
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    raise TypeError(f"cannot hash a {type(obj).__name__} into a cache key; pass plain values or a dataclass")


def config_key(config: Any, length: int = 12) -> str:
    """Return a short stable hash of a config (dataclass, dict, tuple of plain values)."""
    text = json.dumps(_plain(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def cached(name: str, config: Any, compute: Callable[[], Any], *, verbose: bool = True) -> Any:
    """Load `name` for `config` from the cache, or compute it, save it with joblib and return it."""
    from . import __version__

    key = config_key({"config": config, "nblib": __version__})
    path = cache_dir() / "artefacts" / name / f"{key}.joblib"
    if path.exists():
        if verbose:
            print(f"[cache] {name}: hit ({path.name})")
        return joblib.load(path)
    t0 = time.perf_counter()
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    joblib.dump(value, tmp)
    tmp.replace(path)  # atomic: a killed run never leaves half a file
    if verbose:
        print(f"[cache] {name}: computed in {time.perf_counter() - t0:.1f} s")
    return value
