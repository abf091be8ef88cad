"""Latency profiles: seconds per forward pass of each model, as a function of how many tokens it reads at once.

The latency accounting prices every forward pass of a routed run (one per generated token, one per hand-over
that reads a chunk) with a profile. Two kinds, always labelled:

- *measured*: batch-1 forwards of the task models on this CPU with a KV cache of `past` tokens, timed for a few
  chunk lengths (the fastest of interleaved repeats: on a shared machine the minimum is the time least disturbed by
  other work; the spread is kept in `meta`), made non-decreasing in the chunk length (a longer chunk never
  costs less: timing noise is flattened by a running maximum) and interpolated linearly between them;
- *modelled*: a roofline for a named GPU and an "as if" model size per model (bf16 weights read once per
  forward against the chunk's 2 x params x tokens FLOPs, plus a fixed per-forward overhead). Attention and KV
  reads are left out, so it is a lower bound that is tight while the context is short.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from .. import checks


class MissingModel(KeyError):
    """A latency profile has no timings for a model the run used."""

    def __str__(self) -> str:
        return str(self.args[0])


#: GPUs for the roofline: (name, HBM bandwidth bytes/s, dense bf16 FLOP/s) from the vendors' data sheets
GPUS = {"H100 SXM": (3.35e12, 989e12), "A100 80GB": (2.0e12, 312e12), "L4": (0.3e12, 121e12)}
#: the "as if" sizes of the task models for the GPU profile: R2R's pair (1.5B / 32B, 21x) and a 7B middle
AS_IF_PARAMS = {"v2-tiny": 1.5e9, "v2-mid": 7e9, "v2-large": 32e9}


@dataclass(frozen=True)
class LatencyProfile:
    """Seconds per batch-1 forward of each model, at a few chunk lengths (tokens read in one pass)."""

    name: str
    kind: str                      # 'measured' | 'modelled'
    chunks: tuple                  # chunk lengths, increasing
    seconds: dict                  # model name -> seconds per forward at each chunk length
    note: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in ("measured", "modelled"):
            raise ValueError(f"a latency profile is 'measured' or 'modelled', got kind={self.kind!r}")
        if list(self.chunks) != sorted(set(self.chunks)) or not self.chunks or self.chunks[0] < 1:
            raise ValueError(f"chunk lengths must be increasing whole numbers >= 1, got {self.chunks!r}")
        for m, s in self.seconds.items():
            if len(s) != len(self.chunks) or not np.all(np.isfinite(s)) or np.any(np.diff(s) < 0):
                raise ValueError(f"the profile of {m!r} must give one finite time per chunk length, non-decreasing")

    @property
    def label(self) -> str:
        """e.g. 'latency, measured: AMD EPYC ...' or 'latency, modelled: as if 1.5B / 32B on one H100 SXM'."""
        return f"latency, {self.kind}: {self.note or self.name}"

    def check(self, models) -> None:
        """Raise MissingModel when a model has no timings in this profile."""
        missing = [m for m in models if m not in self.seconds]
        if missing:
            raise MissingModel(f"the latency profile {self.name!r} has no timings for {missing}; it covers "
                               f"{sorted(self.seconds)}. Measure it with steer.latency.measure_cpu(models) or "
                               "build a roofline with steer.latency.roofline({name: params})")

    def time(self, model: str, tokens) -> np.ndarray | float:
        """Seconds of one forward of `model` reading `tokens` tokens (linear between and beyond the measured ones)."""
        self.check([model])
        x, y = np.asarray(self.chunks, float), np.asarray(self.seconds[model], float)
        t = np.asarray(tokens, float)
        if len(x) == 1:
            out = np.full_like(t, y[0])
        else:
            slope = max((y[-1] - y[-2]) / (x[-1] - x[-2]), 0.0)
            out = np.where(t <= x[-1], np.interp(t, x, y), y[-1] + slope * (t - x[-1]))
        return float(out) if out.ndim == 0 else out

    def price(self, model: str, histogram: dict) -> float:
        """Seconds of many forwards: `histogram` maps tokens read per forward -> number of such forwards."""
        if not histogram:
            return 0.0
        k = np.array(list(histogram.keys()), float)
        n = np.array(list(histogram.values()), float)
        return float(np.sum(n * np.atleast_1d(self.time(model, k))))

    def to_json(self) -> dict:
        """A JSON-able dict (to ship a measured profile beside a benchmark)."""
        return {"name": self.name, "kind": self.kind, "chunks": list(self.chunks),
                "seconds": {m: list(map(float, s)) for m, s in self.seconds.items()}, "note": self.note,
                "meta": self.meta}


def measure_cpu(models: dict, chunks=(1, 2, 4, 8, 16, 32), past: int = 48, repeats: int = 9,
                threads: int = 1) -> LatencyProfile:
    """Time batch-1 forwards of each model (name -> a task model) on this CPU after `past` cached tokens (fastest repeat)."""
    import os

    import torch
    from transformers import DynamicCache

    from ..cost import blas_name, cpu_model

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        raw = {m: {k: [] for k in chunks} for m in models}
        caches = {}
        for name, model in models.items():
            cache = DynamicCache()
            with torch.no_grad():
                model(input_ids=torch.ones(1, past, dtype=torch.long), cache=cache, use_cache=True)
            caches[name] = cache
        for _ in range(repeats + 1):                  # the first round warms up and is dropped
            for name, model in models.items():
                for k in chunks:
                    ids = torch.ones(1, k, dtype=torch.long)
                    pos = torch.arange(past, past + k)[None]
                    t0 = time.perf_counter()
                    with torch.no_grad():
                        model(input_ids=ids, position_ids=pos, cache=caches[name], use_cache=True)
                    dt = time.perf_counter() - t0
                    caches[name].crop(-k)
                    raw[name][k].append(dt)
        seconds = {m: tuple(float(x) for x in np.maximum.accumulate([np.min(raw[m][k][1:]) for k in chunks]))
                   for m in models}
    finally:
        torch.set_num_threads(old)
    load = [round(x, 2) for x in os.getloadavg()]
    cpu = cpu_model()
    return LatencyProfile("cpu", "measured", tuple(chunks), seconds,
                          note=f"{cpu}, {threads} thread(s), {blas_name()}, load {load[0]}",
                          meta={"cpu": cpu, "blas": blas_name(), "threads": threads, "past": past,
                                "repeats": repeats, "loadavg": load,
                                "spread": {m: {str(k): [float(min(raw[m][k][1:])), float(max(raw[m][k][1:]))]
                                               for k in chunks} for m in models}})


def roofline(params: dict | None = None, gpu: str = "H100 SXM", bytes_per_param: float = 2.0,
             overhead_s: float = 20e-6, chunks=(1, 2, 4, 8, 16, 32, 64, 128, 256)) -> LatencyProfile:
    """A modelled profile: max(weights / bandwidth, 2 x params x tokens / peak) + overhead per forward."""
    params = dict(AS_IF_PARAMS if params is None else params)
    if not isinstance(gpu, str) or gpu not in GPUS:
        raise ValueError(f"unknown GPU {gpu!r}; GPUs with a roofline here: {sorted(GPUS)}")
    bw, peak = GPUS[gpu]
    for m, p in params.items():
        if not (isinstance(p, (int, float)) and not isinstance(p, bool) and 0 < p < math.inf):
            raise checks.BadArgument(f"the 'as if' size of {m!r} must be a positive (finite) number of parameters, "
                                     f"got {p!r}")
    bytes_per_param = checks.number("bytes_per_param", bytes_per_param, low=0, low_open=True, hint="2 for bf16")
    overhead_s = checks.number("overhead_s", overhead_s, low=0, hint="seconds per forward on top of the roofline")
    sec = {m: tuple(max(p * bytes_per_param / bw, 2 * p * k / peak) + overhead_s for k in chunks)
           for m, p in params.items()}
    sizes = " / ".join(f"{p / 1e9:g}B" for p in sorted(set(params.values())))
    return LatencyProfile(f"roofline-{gpu}", "modelled", tuple(chunks), sec,
                          note=f"as if {sizes} on one {gpu} (roofline, bf16, batch 1)",
                          meta={"gpu": gpu, "bandwidth": bw, "peak_flops": peak, "params": params,
                                "bytes_per_param": bytes_per_param, "overhead_s": overhead_s})
