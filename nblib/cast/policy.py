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
    # seconds a step costs beyond its forwards (measured by `step_overheads`): "step_s" per drafted step,
    # "level_s" per draft level (bookkeeping, the draft's small ops), "nodraft_s" per step without a draft
    overhead: dict = field(default_factory=dict)
    kernel_rows: int | None = None  # activation rows up to which the skinny kernel beat torch's matmul here

    def step_nodraft(self, c: int) -> float:
        """Seconds of a step without a draft: one target token plus the step's measured overhead."""
        return self.target(c, 1) + self.overhead.get("nodraft_s", 0.0)

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


def _time_forwards(lm, vocab, batch: int, context: int, ns, repeats: int, both: bool = False):
    """Seconds of one forward of n chained tokens after `context` tokens, for every n in ns.

    One prefill, then rounds over every n (n1, n2, ..., n1, n2, ...; `cost.time_interleaved`), so load drift
    hits every n alike; the median of the rounds per n. both: also each n with torch's matmul in the same rounds
    (inside an open `fast_linears` block), returned as a second list, so the kernel comparison is side by side.
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

    def torch_fn(n: int):
        inner = step_fn(n)

        def step():
            with kernel.limited(0):
                inner()
        return step

    fns = {str(n): step_fn(n) for n in ns}
    if both:
        fns.update({f"torch{n}": torch_fn(n) for n in ns})
    t = time_interleaved(fns, warmup=1, repeats=repeats, device=dev)
    out = [t[str(n)].median_ms / 1e3 for n in ns]
    return (out, [t[f"torch{n}"].median_ms / 1e3 for n in ns]) if both else out


def monotone(row: np.ndarray) -> np.ndarray:
    """The closest non-decreasing curve (isotonic least squares): more tokens never cost less, and one noisy point
    is averaged with its neighbours instead of lifting every later point (as a running max would)."""
    from sklearn.isotonic import IsotonicRegression

    return IsotonicRegression(increasing=True).fit_transform(np.arange(len(row)), row)


def crossover(skinny: np.ndarray, torch_s: np.ndarray, ns) -> int:
    """The largest n of the grid up to which the skinny kernel is at least as fast as torch's matmul at every grid
    point (medians over contexts; 0 when it loses already at the first point). skinny, torch_s: (contexts, len(ns))."""
    win = np.median(skinny, axis=0) <= np.median(torch_s, axis=0)
    n = 0
    for k, ok in zip(ns, win, strict=True):
        if not ok:
            break
        n = int(k)
    return n


def profile(target, draft, batch: int, contexts=(64, 128, 256), target_n=(1, 2, 4, 8, 16, 24, 32, 48, 64),
            draft_n=(1, 2, 4, 8, 16), repeats: int = 3, progress: bool = True, kernels: bool = True,
            overheads: bool = True) -> LatencyProfile:
    """Measure the target's and draft's forward latency over a (context x tokens) grid at one batch size.

    kernels: time the target with the skinny verify kernel and with torch's matmul, keep the faster per tree size
    (the crossover becomes the profile's `kernel_rows`, which `generate` then follows); False: torch's only.
    overheads: also measure what a step costs beyond its forwards (`step_overheads`).
    """
    from .. import progress as bar

    given = draft
    draft, vocab = cast.unpack_draft(draft)
    dev = next(target.parameters()).device
    T = np.zeros((len(contexts), len(target_n)))
    Tt = np.zeros((len(contexts), len(target_n)))
    D = np.zeros((len(contexts), len(draft_n)))
    jobs = [("t", i) for i in range(len(contexts))] + [("d", i) for i in range(len(contexts))]
    with kernel.fast_linears(target, draft, enabled=kernels) as on:
        for kind, i in bar(jobs, desc=f"profiling batch {batch}", enabled=progress, leave=False):
            if kind == "t" and on:  # the kernel and torch's matmul in the same interleaved rounds
                sk, th = _time_forwards(target, None, batch, contexts[i], target_n, repeats, both=True)
                T[i], Tt[i] = monotone(np.array(sk)), monotone(np.array(th))
            elif kind == "t":
                T[i] = monotone(np.array(_time_forwards(target, None, batch, contexts[i], target_n, repeats)))
            else:
                D[i] = monotone(np.array(_time_forwards(draft, vocab, batch, contexts[i], draft_n, repeats)))
    rows = None
    meta = {"repeats": repeats, "statistic": "median of interleaved rounds, isotonic in n",
            "kernel": "skinny" if on else "torch"}
    if on:
        n_x = crossover(T, Tt, target_n)
        rows = batch * n_x
        pick = np.array(target_n)[None, :] <= n_x
        meta.update({"kernel": f"skinny up to {n_x} tree tokens, torch above" if n_x < target_n[-1] else "skinny",
                     "torch_s": Tt.tolist(), "skinny_s": T.tolist(), "kernel_crossover_n": n_x})
        T = np.stack([monotone(r) for r in np.where(pick, T, Tt)])
    prof = LatencyProfile(device_name(dev), batch, list(contexts), list(target_n), list(draft_n), T, D, meta,
                          kernel_rows=rows)
    if overheads:
        prof.overhead = step_overheads(target, given, prof, kernels=kernels,
                                       repeats=repeats)
    return prof


def step_overheads(target, draft, prof: LatencyProfile, kernels: bool = True, repeats: int = 3,
                   steps: int = 12) -> dict:
    """Seconds a decoding step costs beyond the forwards `prof` timed, from whole `generate` steps on random text.

    Three fixed shapes, each decoded for a few and for `steps` more steps (interleaved rounds, medians; the
    difference per step removes the prefill): no draft (the root alone), a 1-token chain (draft catch-up +
    2-token verify) and a 3-token chain (2 more draft levels, 4-token verify). Then nodraft_s = T_none -
    target(1); step_s = T_chain1 - draft(1) - target(2); level_s = (T_chain3 - T_chain1 - (target(4) -
    target(2))) / 2 - draft(1), each at least 0.
    """
    dev = next(target.parameters()).device
    B, c = prof.batch, prof.contexts[0]
    g = torch.Generator().manual_seed(1234 + B)
    V = target.config.vocab_size
    prompts = torch.randint(0, V, (B, max(2, c - steps)), generator=g).tolist()
    shapes = {"none": cast.NoDraft(), "chain1": cast.chain(1), "chain3": cast.chain(3)}
    made: dict[str, int] = {}

    def fn(name: str, new: int):
        def go():
            r = cast.generate(target, draft, prompts, new, shapes[name], kernels=kernels)
            made[f"{name}/{new}"] = r.steps
        return go

    fns = {f"{n}/{k}": fn(n, k) for n in shapes for k in (2, 2 + steps)}
    t = time_interleaved(fns, warmup=1, repeats=repeats, device=dev)
    per = {}
    for n in shapes:
        d_steps = max(1, made[f"{n}/{2 + steps}"] - made[f"{n}/2"])
        per[n] = (t[f"{n}/{2 + steps}"].median_ms - t[f"{n}/2"].median_ms) / 1e3 / d_steps
    T1, d1 = prof.target(c, 1), prof.draft(c, 1)
    out = {"nodraft_s": per["none"] - T1,
           "step_s": per["chain1"] - d1 - prof.target(c, 2),
           "level_s": (per["chain3"] - per["chain1"] - (prof.target(c, 4) - prof.target(c, 2))) / 2 - d1}
    out = {k: max(0.0, float(v)) for k, v in out.items()}
    out.update({"step_none_s": per["none"], "step_chain1_s": per["chain1"], "step_chain3_s": per["chain3"],
                "context": c, "steps": steps})
    return out


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
    code = (profile, _time_forwards, monotone, crossover, step_overheads, time_interleaved, cast.lm_forward,
            cast.lm_hidden, cast.body_forward, cast.prefill, cast.KV, cast.generate, cast.draft_tree, cast.verify,
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


def _fold(st: dict, count: str, **values: float) -> None:
    """Count one more step in st[count] and fold values into st's means: running means over the first 10, then
    moving averages with weight 0.1."""
    st[count] += 1
    a = max(1.0 / st[count], 0.1)
    for k, v in values.items():
        st[k] += a * (v - st[k])


class CastPolicy:
    """CAST: tree width per level, depth and verify count from measured latency and draft confidence.

    A `nblib.cast.tree.TreePolicy`: top_k, reset(), width(info), go_deeper(level, kept, info), n_verify(...).
    """

    def __init__(self, profiles, c1: float = 1.0, c2: float | None = None, c3: float | None = None, top_k: int = 8,
                 max_depth: int = 8, max_verify: int = 64, buffer: int = 4, probe: int = 32, warmup: int = 2,
                 measured: bool = True, margin: float = 0.05, prior: float | None = 0.5):
        if isinstance(profiles, LatencyProfile):
            profiles = {profiles.batch: profiles}
        if not profiles:
            raise ValueError("CastPolicy needs at least one latency profile (see cached_profile)")
        for name, v in (("top_k", top_k), ("max_depth", max_depth), ("max_verify", max_verify), ("probe", probe),
                        ("warmup", warmup)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        cast.check_depth("max_depth", max_depth)
        if not isinstance(margin, (int, float)) or not 0.0 <= margin < 1.0:
            raise ValueError("margin is the fraction by which drafting must beat a plain step, in [0, 1); "
                             f"got {margin!r}")
        if prior is not None and (isinstance(prior, bool) or not isinstance(prior, (int, float))
                                  or not 0.0 <= prior <= 1.0):
            raise ValueError("prior is the chance, assumed before any step is measured, that the draft's next token "
                             f"is the target's (per chain level), in [0, 1], or None; got {prior!r}")
        self.profiles = dict(profiles)
        self.c1, self.c2, self.c3 = c1, c2, c3
        self.top_k, self.max_depth, self.max_verify, self.R = top_k, max_depth, max_verify, buffer
        self.probe, self.warmup, self.measured = probe, warmup, bool(measured)
        self.margin = float(margin)       # drafting must beat a plain step by this fraction: a tie decodes plainly
        self.prior = None if prior is None else float(prior)  # assumed acceptance per level before any measurement
        self.stats: dict[int, dict] = {}  # per batch size, kept across calls: what drafted / plain steps emitted and cost
        self.reset()

    def reset(self) -> None:
        """Clear the per-call state (utility-ratio buffer, draft time of the current step)."""
        self.phi = deque([1.0], maxlen=self.R)
        self._prev_u = None
        self._draft_cost = 0.0
        self._step_cost = None
        self._last_batch = None  # the batch size of this call's previous step (rows finish: it shrinks)
        self.log: list[dict] = []

    # --------------------------------------------------------------- draft at all? ("no draft" is a choice)
    def _stats(self, batch: int) -> dict:
        if batch not in self.stats:
            self.stats[batch] = {"n": 0, "emitted": 0.0, "cost_s": 0.0, "sec_s": 0.0,
                                 "n_plain": 0, "emitted_plain": 0.0, "sec_plain": 0.0,
                                 "skipped": 0, "wait": self.probe, "arm": True}
            self._seed(batch)
        return self.stats[batch]

    def _seed(self, batch: int) -> None:
        """A batch size first seen when rows of this call finish starts from the rates measured at the batch size
        it shrank from (per row, a step over 3 rows costs about what it cost over 4), capped at `warmup` steps of
        each kind so its own steps soon outweigh them, instead of paying a fresh warm-up for a few steps."""
        src = self.stats.get(self._last_batch) if self._last_batch is not None and self._last_batch > batch \
            else None
        if src is None or not (src["n"] >= 1 and src["n_plain"] >= self.warmup):
            return
        st = self.stats[batch]
        for k in ("emitted", "cost_s", "sec_s", "emitted_plain", "sec_plain", "arm"):
            st[k] = src[k]
        st["n"], st["n_plain"], st["warm"] = min(src["n"], self.warmup), min(src["n_plain"], self.warmup), False
        st["seeded_from"] = self._last_batch

    def prior_rate(self, batch: int, context: int) -> float:
        """Tokens per second of the best drafted chain the profile predicts before any drafted step was seen: a
        chain of k levels emits 1 + p + ... + p^k tokens (p = `prior` per level) and costs the step's measured
        overhead, k draft forwards, k - 1 levels' overhead and a (k + 1)-token verify (0 with prior=None)."""
        if self.prior is None:
            return 0.0
        p = self.prof(batch)
        oh = p.overhead
        best, tokens = 0.0, 1.0
        for k in range(1, self.max_depth + 1):
            tokens += self.prior ** k
            sec = (oh.get("step_s", 0.0) + k * p.draft(context, 1) + (k - 1) * oh.get("level_s", 0.0)
                   + p.target(context, k + 1))
            best = max(best, tokens / max(sec, 1e-12))
        return best

    def _plain_predicted(self, batch: int, context: int) -> float:
        """Tokens per second per row of a step without a draft, as the profile predicts it."""
        return 1.0 / max(self.prof(batch).step_nodraft(context), 1e-12)

    def rates(self, batch: int, context: int) -> tuple[float, float]:
        """(tokens per second of a drafted step, of a step without a draft) at this batch size, as the policy
        sees them now: measured seconds once steps without a draft were observed `warmup` times and drafted
        steps at least once (`measured=True`; a probe after a skipped warm-up is judged on its own seconds, the
        draft's catch-up on the skipped tokens included), else the profile's predictions (drafted: the measured
        tokens per predicted draft + overheads + verify seconds, or `prior_rate` before any drafted step; plain:
        one target token + the measured no-draft overhead)."""
        st = self._stats(batch)
        if self.measured and st["n"] >= 1 and st["n_plain"] >= self.warmup:
            return (st["emitted"] / max(st["sec_s"], 1e-12), st["emitted_plain"] / max(st["sec_plain"], 1e-12))
        plain = self._plain_predicted(batch, context)
        if st["n"] == 0:
            return self.prior_rate(batch, context), plain
        return st["emitted"] / max(st["cost_s"], 1e-12), plain

    def warms_up(self, batch: int, context: int) -> bool:
        """Whether the first steps at this batch size draft (the warm-up): with prior=None always; else only where
        the profile predicts a drafted chain (`prior_rate`) could beat a plain step by `margin`. Where even that
        loses (a large batch on a CPU: a drafted step costs about two plain ones), CAST decodes plainly from the
        first step and only the probes try drafting. Decided once per batch size, at its first step."""
        st = self._stats(batch)
        if "warm" not in st:
            st["warm"] = self.prior is None or (self.prior_rate(batch, context)
                                                >= (1.0 + self.margin) * self._plain_predicted(batch, context))
        return st["warm"]

    def should_draft(self, batch: int, context: int) -> bool:
        """Draft this step unless steps without a draft emit more tokens per second than drafted ones.

        It drafts the first `warmup` steps at a batch size (where `warms_up`: the profile, with an assumed
        acceptance `prior` per level, says drafting could pay; else it starts without a draft; a batch size reached
        when rows finish starts from the rates of the one it shrank from, `_seed`), then (with `measured=True`, the
        default) decodes `warmup` steps without a draft, so both rates rest on measured seconds: the profile
        predicts a drafted step's forwards, but not everything a real step costs (the draft's small ops, the cache
        bookkeeping, BLAS threads warming up), and at large batches that gap decides the choice. With
        `measured=False`, or until both kinds of step were measured, the rates come from the profile (`rates`).
        Means are running means over the first 10 steps of each kind, then moving averages with weight 0.1, so one
        unlucky step does not flip the choice. The losing choice is re-tried once after `probe` steps, then after
        twice as many, ... (a changed acceptance rate or a longer context is noticed); a flip resets the wait.
        Drafting is chosen only when its rate beats the plain rate by at least `margin` (default 5 %): where the two
        are within timing noise of each other (batch 2 on a 2-core CPU: 21.8 vs 21.3 tok/s per row), a tie goes to
        the plain step, which has no warm-up, catch-up or acceptance variance to pay.
        """
        st = self._stats(batch)
        self._last_batch = batch
        if st["n"] < self.warmup and self.warms_up(batch, context):
            return True
        if self.measured and st["n_plain"] < self.warmup:
            choice = False
            rate_draft = rate_plain = float("nan")
        else:
            rate_draft, rate_plain = self.rates(batch, context)
            best = rate_draft >= (1.0 + self.margin) * rate_plain
            if best != st["arm"]:
                st["arm"], st["skipped"], st["wait"] = best, 0, self.probe
            if st["skipped"] >= st["wait"]:  # probe the other choice once
                st["skipped"], st["wait"] = 0, 2 * st["wait"]
                choice = not best
            else:
                st["skipped"] += 1
                choice = best
        if not choice:
            self.log.append({"batch": batch, "context": context, "verify": 0, "draft_cost": 0.0,
                             "rate_draft": rate_draft, "rate_plain": rate_plain})
        return choice

    def observe(self, batch: int, emitted: float, seconds: float, drafted: bool) -> None:
        """After a step: fold its emitted tokens per row and seconds (and, when drafted, its predicted cost) into
        the moving averages of its kind; the measured seconds are logged beside the prediction."""
        st = self._stats(batch)
        if self.log:
            self.log[-1]["seconds"] = seconds
        if not drafted:
            _fold(st, "n_plain", emitted_plain=emitted, sec_plain=seconds)
        elif self._step_cost is not None:
            _fold(st, "n", emitted=emitted, cost_s=self._step_cost, sec_s=seconds)
            self._step_cost = None

    def kernel_rows(self, batch: int) -> int | None:
        """Activation rows up to which the skinny kernel beat torch's matmul in this batch size's profile."""
        return self.prof(batch).kernel_rows

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
        oh = p.overhead
        c = (np.array([p.draft(info.context, k) for k in range(1, K + 1)]) + oh.get("level_s", 0.0)) / unit
        n = marginal_select(u, c, self.c1)
        self._level_u, self._level_c = float(u[n - 1]), float(c[n - 1])
        if info.level == 1:  # the draft's catch-up call on the new tokens + the step's fixed overhead
            self._draft_cost = (p.draft(info.context, 1) + oh.get("step_s", 0.0)) / unit
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
        self._step_cost = (self._draft_cost + c[m - 1]) * unit  # predicted seconds of this drafted step
        self.log.append({"batch": B, "context": context, "verify": m, "draft_cost": self._draft_cost,
                         "predicted_s": self._step_cost})
        return m

    def __repr__(self) -> str:
        return (f"CastPolicy(c1={self.c1}, c2={self.c2}, c3={self.c3}, top_k={self.top_k}, "
                f"max_depth={self.max_depth}, probe={self.probe}, measured={self.measured}, margin={self.margin}, "
                f"prior={self.prior}, "
                f"batches={sorted(self.profiles)})")


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
