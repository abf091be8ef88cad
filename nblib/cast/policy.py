"""CAST's cost model: measured latency tables per device and batch size, and the tree-shape policy built on them.

`profile(...)` times one forward of the target (and of the draft) for n new
tree tokens over a cache of c tokens, at batch size B, on the machine it runs
on; `cached_profile` keeps one table per (device, batch, models, grid).
`CastPolicy` then picks, at every decoding step,

- the width of each tree level (breadth pruning, threshold C1),
- whether to draft another level (depth pruning, threshold C2),
- how many drafted nodes to verify (dynamic reranking: threshold C3, or by
  default the m that maximises expected tokens per unit of measured time),

with utility = the draft's cumulative confidence (a probability) and cost =
measured time normalised by one target decoding step.
"""
from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import checks
from ..cost import time_interleaved
from . import kernel
from . import tree as cast


@dataclass
class LatencyProfile:
    """Measured forward latency tables (seconds) on one device at one batch size."""

    device: str
    batch: int
    contexts: list[int]          # cache lengths c (grid L, 2L, ..., M*L)
    target_n: list[int]          # tree tokens n for the target table
    draft_n: list[int]           # tokens per level n for the draft table
    target_s: np.ndarray         # (len(contexts), len(target_n)) seconds per target forward
    draft_s: np.ndarray          # (len(contexts), len(draft_n)) seconds per draft forward
    meta: dict = field(default_factory=dict)

    def row(self, c: int) -> int:
        """Grid row for context c: round up to the next grid point, clamp to the table (CAST's select)."""
        i = int(np.searchsorted(self.contexts, c, side="left"))
        return min(i, len(self.contexts) - 1)

    @staticmethod
    def _interp(ns: list[int], row: np.ndarray, n: float) -> float:
        """Piecewise-linear in n, linear extrapolation past the last grid point."""
        if n <= ns[-1]:
            return float(np.interp(n, ns, row))
        slope = (row[-1] - row[-2]) / (ns[-1] - ns[-2]) if len(ns) > 1 else row[-1] / ns[-1]
        return float(row[-1] + slope * (n - ns[-1]))

    def target(self, c: int, n: float) -> float:
        """Seconds for one target forward of n tree tokens over a cache of c tokens."""
        return self._interp(self.target_n, self.target_s[self.row(c)], n)

    def draft(self, c: int, n: float) -> float:
        """Seconds for one draft forward of n tokens (one tree level) over a cache of c tokens."""
        return self._interp(self.draft_n, self.draft_s[self.row(c)], n)


def device_name(device: torch.device) -> str:
    """A stable name of the device the profile was measured on (GPU model, or CPU model and threads)."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    from ..cost import cpu_model

    return f"{device.type}:{cpu_model()}:threads={torch.get_num_threads()}"


def _time_forwards(lm, vocab, batch: int, context: int, ns, repeats: int) -> list[float]:
    """Seconds of one forward of n chained tokens after `context` tokens, for every n in ns.

    One prefill, then rounds over every n (n1, n2, ..., n1, n2, ...; `cost.time_interleaved`), so load drift
    hits every n alike; the median of the rounds per n.
    """
    dev = next(lm.parameters()).device
    g = torch.Generator().manual_seed(context)
    V = lm.config.vocab_size
    kv = cast.KV(batch, dev)
    d = lm.config.hidden_size
    feat = cast.is_feature_draft(lm)  # a feature draft reads features too: random ones time the same
    with torch.no_grad():
        cast.prefill(lm, kv, torch.randint(0, V, (batch, context), generator=g).tolist(), vocab,
                     feats=list(torch.randn(batch, context, d, generator=g).to(dev)) if feat else None)
    L = kv.length

    def step_fn(n: int):
        tok = torch.randint(0, V, (batch, n), generator=g).to(dev)
        f = torch.randn(batch, n, d, generator=g).to(dev) if feat else None
        ar = torch.arange(n, device=dev)
        anc = (ar[:, None] >= ar[None, :]).expand(batch, n, n)  # a chain: every node sees its predecessors
        dep = ar[None, :].expand(batch, n)
        ok = torch.ones(batch, n, dtype=torch.bool, device=dev)

        def step():
            cast.lm_forward(lm, kv, tok, anc, dep, ok, vocab, feats=f)
            kv.truncate(L)
        return step

    t = time_interleaved({str(n): step_fn(n) for n in ns}, warmup=1, repeats=repeats, device=dev)
    return [t[str(n)].median_ms / 1e3 for n in ns]


def monotone(row: np.ndarray) -> np.ndarray:
    """The closest non-decreasing curve (isotonic least squares): more tokens never cost less, and one noisy point
    is averaged with its neighbours instead of lifting every later point (as a running max would)."""
    from sklearn.isotonic import IsotonicRegression

    return IsotonicRegression(increasing=True).fit_transform(np.arange(len(row)), row)


def profile(target, draft, batch: int, contexts=(64, 128, 256), target_n=(1, 2, 4, 8, 16, 24, 32, 48, 64),
            draft_n=(1, 2, 4, 8, 16), repeats: int = 3, progress: bool = True, kernels: bool = True) -> LatencyProfile:
    """Measure the target's and draft's forward latency over a (context x tokens) grid at one batch size.

    kernels: time with the skinny verify kernel (as `generate(kernels=True)` runs), else with torch's.
    """
    from .. import progress as bar

    draft, vocab = cast.unpack_draft(draft)
    dev = next(target.parameters()).device
    T = np.zeros((len(contexts), len(target_n)))
    D = np.zeros((len(contexts), len(draft_n)))
    jobs = [("t", i) for i in range(len(contexts))] + [("d", i) for i in range(len(contexts))]
    with kernel.fast_linears(target, draft, enabled=kernels) as on:
        for kind, i in bar(jobs, desc=f"profiling batch {batch}", enabled=progress, leave=False):
            if kind == "t":
                T[i] = monotone(np.array(_time_forwards(target, None, batch, contexts[i], target_n, repeats)))
            else:
                D[i] = monotone(np.array(_time_forwards(draft, vocab, batch, contexts[i], draft_n, repeats)))
    return LatencyProfile(device_name(dev), batch, list(contexts), list(target_n), list(draft_n), T, D,
                          {"repeats": repeats, "statistic": "median of interleaved rounds, isotonic in n",
                           "kernel": "skinny" if on else "torch"})


def cached_profile(target, draft, batch: int, *, contexts=(64, 128, 256),
                   target_n=(1, 2, 4, 8, 16, 24, 32, 48, 64), draft_n=(1, 2, 4, 8, 16), repeats: int = 3,
                   tag: str = "", verbose: bool = False, kernels: bool = True) -> LatencyProfile:
    """`profile`, cached per device, batch size, models, grid and kernel (nblib.cache)."""
    from ..cache import cached

    dm, dvocab = cast.unpack_draft(draft)
    nv = len(dvocab) if dvocab is not None else dm.config.vocab_size
    dev = next(target.parameters()).device
    key = {"device": device_name(dev), "batch": batch, "contexts": list(contexts), "target_n": list(target_n),
           "draft_n": list(draft_n), "repeats": repeats, "tag": tag,
           "target": _model_sig(target), "draft": _model_sig(dm), "draft_vocab": nv,
           **weights_key(target, draft), "kernel": "skinny" if kernels and kernel.available() else "torch"}
    code = (profile, _time_forwards, monotone, time_interleaved, cast.lm_forward, cast.lm_hidden, cast.body_forward, cast.prefill, cast.KV,
            kernel)
    return cached("cast_profile", key, lambda: profile(target, draft, batch, contexts, target_n, draft_n, repeats,
                                                       kernels=kernels), code=code, verbose=verbose)


def weights_key(target, draft) -> dict:
    """What a cached CAST result was computed from: the sha256 of the target's and the draft's weights (and of the
    draft's vocabulary map), never their labels, so a retrained or swapped model under the same name misses."""
    from ..cache import weights_fingerprint

    dm, dvocab = cast.unpack_draft(draft)
    vocab = None
    if dvocab is not None:
        v = torch.as_tensor(dvocab).detach().to("cpu").contiguous()
        vocab = hashlib.sha256(f"{v.dtype}{tuple(v.shape)}".encode() + v.numpy().tobytes()).hexdigest()[:16]
    return {"target_weights": weights_fingerprint(target), "draft_weights": weights_fingerprint(dm),
            "draft_vocab_sha256": vocab}


def _model_sig(lm) -> dict:
    c = lm.config
    return {"type": c.model_type, "layers": c.num_hidden_layers, "d": c.hidden_size, "vocab": c.vocab_size,
            "params": sum(p.numel() for p in lm.parameters()), "dtype": str(next(lm.parameters()).dtype)}


# ----------------------------------------------------------------------------- the selection rule
def marginal_select(u, c, threshold: float, eps: float = 1e-12) -> int:
    """Algorithm 1 (robust marginal utility): largest k whose gain over the last kept k, per extra cost, >= threshold.

    u, c: utilities and costs of keeping 1..K items (u[0] is k=1); at least one item is kept; extra
    items that cost nothing (c_k - c_a <= eps) are kept while they add utility.
    """
    try:
        u, c = np.asarray(u, float), np.asarray(c, float)
    except (TypeError, ValueError):
        raise ValueError(f"u and c must be lists of numbers (utilities and costs), got {u!r:.60} and {c!r:.60}") \
            from None
    if u.ndim != 1 or u.shape != c.shape or u.size == 0:
        raise ValueError(f"u and c must be non-empty 1-D lists of the same length, got shapes {u.shape} and {c.shape}")
    if not (np.isfinite(u).all() and np.isfinite(c).all()):
        raise ValueError("u and c must be finite (a NaN or inf utility or cost selects nothing meaningful)")
    threshold = checks.number("threshold", threshold)
    a = 0
    for k in range(1, len(u)):
        dc, du = c[k] - c[a], u[k] - u[a]
        if (dc <= eps and du > 0) or (dc > eps and du / dc >= threshold * (1 - 1e-6)):
            a = k
    return a + 1


class CastPolicy:
    """CAST: tree width per level, depth and verify count from measured latency and draft confidence.

    A `nblib.cast.tree.TreePolicy`: top_k, reset(), width(info), go_deeper(level, kept, info), n_verify(...).
    """

    def __init__(self, profiles, c1: float = 1.0, c2: float | None = None, c3: float | None = None, top_k: int = 8,
                 max_depth: int = 8, max_verify: int = 64, buffer: int = 4):
        if isinstance(profiles, LatencyProfile):
            profiles = {profiles.batch: profiles}
        if not profiles:
            raise ValueError("CastPolicy needs at least one latency profile (see cached_profile)")
        for name, v in (("top_k", top_k), ("max_depth", max_depth), ("max_verify", max_verify)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        cast.check_depth("max_depth", max_depth)
        self.profiles = dict(profiles)
        self.c1, self.c2, self.c3 = c1, c2, c3
        self.top_k, self.max_depth, self.max_verify, self.R = top_k, max_depth, max_verify, buffer
        self.reset()

    def reset(self) -> None:
        """Clear the per-call state (utility-ratio buffer, draft time of the current step)."""
        self.phi = deque([1.0], maxlen=self.R)
        self._prev_u = None
        self._draft_cost = 0.0
        self.log: list[dict] = []

    def prof(self, batch: int) -> LatencyProfile:
        """The profile measured at this batch size (else the nearest measured one)."""
        if batch in self.profiles:
            return self.profiles[batch]
        return self.profiles[min(self.profiles, key=lambda b: (abs(b - batch), b))]

    def width(self, info: cast.LevelInfo) -> int:
        """Breadth pruning: keep n_i nodes of this level by marginal utility per marginal draft cost >= C1."""
        p = self.prof(info.batch)
        K = min(self.top_k, info.scores.shape[1])
        v = info.scores[:, :K].double().exp()  # (B, K) confidences, descending
        u = v.cumsum(1).mean(0).cpu().numpy()  # batch-averaged utility of keeping k nodes
        unit = p.target(info.context, 1)
        c = np.array([p.draft(info.context, k) for k in range(1, K + 1)]) / unit
        n = marginal_select(u, c, self.c1)
        self._level_u, self._level_c = float(u[n - 1]), float(c[n - 1])
        if info.level == 1:
            self._draft_cost = p.draft(info.context, 1) / unit  # the draft's catch-up call on the new tokens
            self._prev_u = None
            self._U, self._N = 0.0, 0
        self._U += self._level_u
        self._N += n
        return n

    def go_deeper(self, level: int, kept: torch.Tensor, info: cast.LevelInfo) -> bool:
        """Depth pruning: draft level+1 only if alpha * u_i / c_i >= C2 (alpha = mean recent utility ratio).

        With C2 = None (default) the threshold is the step's current expected rate, (1 + U) / (draft + verify
        time so far), and c_i also counts the extra verification time of the next level's nodes.
        """
        u, c = self._level_u, self._level_c
        if self._prev_u is not None and self._prev_u > 0:
            self.phi.append(u / self._prev_u)
        self._prev_u = u
        if level >= self.max_depth:
            return False
        alpha = float(np.mean(self.phi))
        if self.c2 is not None:
            go = alpha * u / max(c, 1e-12) >= self.c2
        else:
            p = self.prof(info.batch)
            unit = p.target(info.context, 1)
            verify_now = p.target(info.context, self._N + 1) / unit
            extra = (p.target(info.context, self._N + 1 + kept.shape[1]) / unit) - verify_now
            rate = (1.0 + self._U) / (self._draft_cost + c + verify_now)
            go = alpha * u / max(c + extra, 1e-12) >= rate
        if go:
            self._draft_cost += c
        return go

    def n_verify(self, scores: torch.Tensor, context: int) -> int:
        """Dynamic reranking: verify m nodes, by threshold C3 or (default) max expected tokens per unit time."""
        B, n = scores.shape
        p = self.prof(B)
        M = min(self.max_verify, n)
        u = scores[:, :M].double().exp().cumsum(1).mean(0).cpu().numpy()  # expected accepted drafts if m nodes verified
        unit = p.target(context, 1)
        c = np.array([p.target(context, m + 1) for m in range(1, M + 1)]) / unit  # root + m nodes
        if self.c3 is not None:
            m = marginal_select(u, c, self.c3)
        else:
            rate = (1.0 + u) / (self._draft_cost + c)
            m = int(np.argmax(rate)) + 1
        self.log.append({"batch": B, "context": context, "verify": m, "draft_cost": self._draft_cost})
        return m

    def __repr__(self) -> str:
        return (f"CastPolicy(c1={self.c1}, c2={self.c2}, c3={self.c3}, top_k={self.top_k}, "
                f"max_depth={self.max_depth}, batches={sorted(self.profiles)})")


def expected_rate(scores: torch.Tensor, m: int, profile: LatencyProfile, context: int, levels: int,
                  width: int) -> float:
    """Expected tokens per second of a step: (1 + sum of the m best confidences) / (draft + verify time)."""
    u = float(scores[:, :m].exp().sum(1).mean())
    t = levels * profile.draft(context, width) + profile.target(context, m + 1)
    return (1 + u) / t


def linear_profile(batch: int, lam: float, delta: float, draft_lam: float | None = None,
                   draft_delta: float = 0.0, n_max: int = 64) -> LatencyProfile:
    """A synthetic profile with linear cost t(n) = delta + lam * n (for tests and for EAGLE-2 equivalence)."""
    ns = list(range(1, n_max + 1))
    dl = lam if draft_lam is None else draft_lam
    T = np.array([[delta + lam * n for n in ns]])
    D = np.array([[draft_delta + dl * n for n in ns]])
    return LatencyProfile("synthetic-linear", batch, [10**6], ns, ns, T, D, {"lam": lam, "delta": delta})
