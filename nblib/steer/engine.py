"""Routed generation: two models, one KV cache each, one step at a time, every token counted.

Before each step the small model reads what it has not seen (the prompt, or the
large model's last step), and the logits of that same forward give the next
token and the step's confidence. If the router keeps the step, the small model
writes it; otherwise the large model reads *its* unseen tokens (a late hand-over
makes it read the whole context: prefill costs FLOPs too) and writes the step.
Control returns to the small model at the next boundary.

A batch holds many problems at once (ragged rows in one cache per model, kept
apart by a per-slot validity mask and per-row positions). A whole threshold grid
runs in one pass: rows that share a history share a row, and a row forks when
the thresholds it stands for disagree at a step, so the grid costs about as
much as its few distinct trajectories. FLOPs are analytic per row
(`nblib.cost.transformer_flops` of each forward as a batch-1 run with a clean
cache would do it), split by model and by prefill / decode.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np
import torch

from ..cost import Ledger, TransformerShape, transformer_flops
from .confidence import Identity, aggregate, check_score, score_logits
from .routing import check_thresholds
from .steps import DelimiterNeverOccurs, StepFormat

MODELS = ("small", "large")


# ----------------------------------------------------------------------------- records
@dataclass
class Event:
    """One forward of one model for one row: how many tokens it read, after how many, and its FLOPs."""

    model: str           # 'small' | 'large'
    kind: str            # 'prefill' (reading unseen context at a boundary) | 'decode' (feeding back its own token)
    tokens: int
    past: int            # tokens already in this model's cache for this row
    flops: int
    step: int            # the step (0-based) this forward belongs to
    wasted: bool = False  # a small-model draft token thrown away because the step went to the large model
    call: int = -1        # the forward pass (per row) this event is part of: a hand-over read and the model's own
                          # last token go through one forward, recorded as two events with the same call
    gen_flops: int = 0    # on the last event of a call: FLOPs of the one token that forward generated (one token
                          # at its position), the generated-token accounting's charge; 0 on the call's other events


@dataclass
class Step:
    """One written step: who wrote it, its text, the confidence that routed it, and what it cost."""

    index: int
    author: str                  # 'small' | 'large'
    ids: list[int]
    text: str
    ended: str                   # 'delimiter' | 'eos' | 'cap'
    score: float | None = None   # raw confidence (None when the small model was not asked)
    read: list = field(default_factory=list)  # positions in the small model's draft whose scores made `score`
    value: float | None = None   # the routing value compared with the threshold (posterior, or a random draw)
    flops: dict = field(default_factory=dict)  # model -> FLOPs spent at this step
    handover_tokens: int = 0     # tokens the large model prefilled for this step
    drafted: list = field(default_factory=list)  # the small model's draft (token ids) when it was asked; thrown
                                                 # away when the large model wrote the step


@dataclass
class RoutedRun:
    """One problem's routed generation at one threshold: its text, its steps and its cost events."""

    problem: int
    prompt_ids: list[int]
    text: str
    steps: list[Step]
    events: list[Event]
    threshold: float

    @property
    def flops(self) -> int:
        """Total FLOPs of both models."""
        return int(sum(e.flops for e in self.events))

    def flops_of(self, model: str, kind: str | None = None) -> int:
        """FLOPs of one model (optionally one kind: 'prefill' or 'decode')."""
        return int(sum(e.flops for e in self.events if e.model == model and (kind is None or e.kind == kind)))

    def tokens_of(self, model: str, kind: str | None = None) -> int:
        """Tokens one model processed (optionally one kind)."""
        return int(sum(e.tokens for e in self.events if e.model == model and (kind is None or e.kind == kind)))

    def generated_flops_of(self, model: str | None = None) -> int:
        """Generated-token FLOPs: each generated token (kept or a thrown-away draft) charged once to its writer."""
        return int(sum(e.gen_flops for e in self.events if model is None or e.model == model))

    def generated_tokens_of(self, model: str) -> int:
        """Tokens one model generated (its forward passes: each produces one token), drafts included."""
        return len({e.call for e in self.events if e.model == model})

    def calls(self) -> list[tuple[str, int, int]]:
        """Every forward pass of this run, in order: (model, tokens read in that pass, tokens before them)."""
        out: dict[int, list] = {}
        for e in self.events:
            c = out.setdefault(e.call, [e.model, 0, e.past])
            c[1] += e.tokens
            c[2] = min(c[2], e.past)
        return [tuple(v) for _, v in sorted(out.items())]

    @property
    def large_steps(self) -> int:
        """Steps written by the large model."""
        return sum(s.author == "large" for s in self.steps)

    @property
    def large_share(self) -> float:
        """Share of steps written by the large model."""
        return self.large_steps / max(len(self.steps), 1)

    def ledger(self, names: dict | None = None) -> Ledger:
        """This run's cost as an `nblib.cost.Ledger`: one entry per model and kind (prompt_tokens = prefilled)."""
        names = names or {m: m for m in MODELS}
        led = Ledger()
        for m in MODELS:
            for kind in ("prefill", "decode"):
                ev = [e for e in self.events if e.model == m and e.kind == kind]
                if not ev:
                    continue
                n = sum(e.tokens for e in ev)
                led.add(f"{names[m]} {kind}", flops=int(sum(e.flops for e in ev)), calls=len(ev),
                        prompt_tokens=n if kind == "prefill" else 0, completion_tokens=n if kind == "decode" else 0,
                        wasted_tokens=sum(e.tokens for e in ev if e.wasted))
        return led


# ----------------------------------------------------------------------------- deciders
class Decider(Protocol):
    """What decides each step: a routing value per step, compared with the threshold (large when value < tau)."""

    reads_small: bool  # True: the value comes from the small model's logits at the boundary

    def value(self, problem: int, step: int, score: float | None) -> float: ...


@dataclass
class ConfidenceDecider:
    """STEER: the routing value is the calibrated confidence of the small model (posterior of 'high')."""

    calibrator: Any = field(default_factory=Identity)
    reads_small: bool = True

    def value(self, problem: int, step: int, score: float | None) -> float:
        """The calibrated posterior of this step's raw score."""
        return float(self.calibrator(np.array([score]))[0])


@dataclass
class RandomDecider:
    """Random step routing: a seeded uniform draw per (problem, step), so 'value < share' routes that share."""

    seed: int = 0
    reads_small: bool = False

    def value(self, problem: int, step: int, score: float | None) -> float:
        """A uniform draw fixed by (seed, problem, step)."""
        return float(np.random.default_rng([self.seed, problem, step]).random())


def goes_large(value: float | None, tau: float) -> bool:
    """The routing rule: the large model writes the step when tau >= 1 or the value is below tau."""
    return tau >= 1.0 or (value is not None and value < tau)


# ----------------------------------------------------------------------------- one model's cache over rows
class Track:
    """One model's KV cache over ragged rows (validity mask, per-row positions), fed only what it has not seen."""

    def __init__(self, model, rows: int):
        from transformers import DynamicCache

        self.model = model
        self.shape = TransformerShape.from_config(model.config)
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.cache = DynamicCache()
        self.valid = torch.zeros(rows, 0, dtype=torch.bool, device=self.device)
        self.n_pos = torch.zeros(rows, dtype=torch.long, device=self.device)

    @property
    def length(self) -> int:
        """Slots in the cache (live or dead)."""
        return self.valid.shape[1]

    def _tensors(self):
        for layer in self.cache.layers:
            if getattr(layer, "keys", None) is not None and torch.is_tensor(layer.keys) and layer.keys.numel():
                yield layer

    @torch.no_grad()
    def feed(self, chunks: Sequence[Sequence[int]], pad: int = 0) -> tuple[torch.Tensor | None, int]:
        """Append ragged token lists to the cache (empty lists leave a row untouched); logits (R, V) at each row's last."""
        lens = torch.tensor([len(c) for c in chunks], device=self.device)
        N = int(lens.max()) if len(chunks) else 0
        if N == 0:
            return None, self.length
        R, past = len(chunks), self.length
        tokens = torch.tensor([list(c) + [pad] * (N - len(c)) for c in chunks], device=self.device)  # (R, N)
        ar = torch.arange(N, device=self.device)
        ok = ar[None, :] < lens[:, None]                                                            # (R, N)
        causal = (ar[:, None] >= ar[None, :])[None] & ok[:, None, :]                                # (R, N, N)
        allowed = torch.cat([self.valid[:, None, :].expand(R, N, past), causal], dim=2)
        allowed[:, ar, past + ar] = True  # every query sees itself: no empty rows for padding
        mask = torch.zeros(R, 1, N, past + N, dtype=self.dtype, device=self.device)
        mask.masked_fill_(~allowed[:, None], torch.finfo(self.dtype).min)
        pos = self.n_pos[:, None] + ar[None, :]
        out = self.model(input_ids=tokens, attention_mask=mask, position_ids=pos, cache=self.cache, use_cache=True)
        self.valid = torch.cat([self.valid, ok], dim=1)
        self.n_pos = self.n_pos + lens
        last = (lens - 1).clamp(min=0)
        return out.logits[torch.arange(R, device=self.device), last].float(), past

    def kill(self, row: int, cols: Sequence[int]) -> None:
        """Mark slots dead (a discarded draft) and step the row's next position back."""
        if cols:
            self.valid[row, list(cols)] = False
            self.n_pos[row] -= len(cols)

    def select(self, rows: Sequence[int]) -> None:
        """Keep / repeat batch rows (a fork copies a row)."""
        idx = torch.tensor(list(rows), dtype=torch.long, device=self.device)
        for layer in self._tensors():
            layer.keys = layer.keys[idx]
            layer.values = layer.values[idx]
        self.valid = self.valid[idx]
        self.n_pos = self.n_pos[idx]

    def compact(self) -> None:
        """Squeeze out dead slots (live entries right-aligned per row) when they waste over a third of the cache."""
        live = self.valid.sum(1)
        width = int(live.max()) if live.numel() else 0
        if self.length - width <= max(8, self.length // 3):
            return
        order = torch.sort(self.valid.to(torch.int8), dim=1, stable=True).indices[:, self.length - width:]
        for layer in self._tensors():
            g = order[:, None, :, None].expand(-1, layer.keys.shape[1], -1, layer.keys.shape[3])
            layer.keys = layer.keys.gather(2, g)
            layer.values = layer.values.gather(2, g)
        self.valid = self.valid.gather(1, order)

    def flops(self, tokens: int, past: int) -> int:
        """Analytic FLOPs of one batch-1 forward over `tokens` after `past` (logits at the last position)."""
        return transformer_flops(self.shape, 1, tokens, past=past, logits_positions=1)


# ----------------------------------------------------------------------------- the router
@dataclass
class Row:
    """One distinct routed history; it stands for every threshold index in `taus`."""

    problem: int
    taus: list[int]
    ctx: list[int]
    prompt_len: int
    skip_small: bool
    seen: dict = field(default_factory=lambda: {"small": 0, "large": 0})
    steps: list[Step] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    done: bool = False
    # the step in progress
    cur: list[int] = field(default_factory=list)
    author: str = "small"
    ended: str = ""
    draft_cols: list[int] = field(default_factory=list)
    score: float | None = None
    token_scores: list[float] = field(default_factory=list)
    read: list = field(default_factory=list)      # positions of the draft whose scores made the step's score
    drafted: list = field(default_factory=list)   # the small model's draft of this step (ids)
    value: float | None = None
    step_start_events: int = 0
    handover: int = 0
    last_end: int = 0            # context length after the last committed step
    calls: int = 0               # forward passes so far (the next call id)

    def fork(self, taus: list[int]) -> "Row":
        """A copy standing for the thresholds `taus`."""
        new = copy.copy(self)
        new.taus = list(taus)
        new.ctx, new.cur, new.draft_cols = list(self.ctx), list(self.cur), list(self.draft_cols)
        new.seen, new.steps, new.events = dict(self.seen), list(self.steps), list(self.events)
        new.token_scores, new.read, new.drafted = list(self.token_scores), list(self.read), list(self.drafted)
        return new


#: where a step's confidence is read: from the step's first token (the paper: "prior to generating a step"),
#: or from its result (the tokens after the first marker the small model drafts: '=' in the task world, '#'
#: on the answer line); see `RouterConfig`
READ_AT = ("start", "result")


@dataclass
class RouterConfig:
    """How a routed generation reads confidence: the score, where in the step, over how many tokens, how.

    at='start': the scores of the step's first `lookahead` tokens (lookahead=1: the paper's read, before the step;
    16: the whole-step draft). at='result': the small model drafts up to the first token after a marker in
    `markers` (the step's first result digit) and the score aggregates the drafted tokens after the marker
    ('first': that digit alone; 'min'/'mean': every result token up to the step's end); a step with no marker
    within `lookahead` drafted tokens falls back to all of them. Only tokens the small model drafted are read.
    """

    score: str = "max_prob"
    lookahead: int = 1         # tokens of the step the small model may draft to read its confidence (1: the first)
    aggregate: str = "mean"
    at: str = "start"          # 'start' | 'result'
    markers: tuple = ("=", "#")

    def __post_init__(self):
        check_score(self.score)
        if isinstance(self.lookahead, bool) or not isinstance(self.lookahead, int) or self.lookahead < 1:
            raise ValueError(f"lookahead must be a whole number of tokens >= 1, got {self.lookahead!r}")
        aggregate([0.0], self.aggregate)
        if self.at not in READ_AT:
            raise ValueError(f"unknown read position at={self.at!r}; use one of {READ_AT}")
        if self.at == "result" and (not self.markers or not all(isinstance(m, str) and m for m in self.markers)):
            raise ValueError(f"at='result' needs non-empty marker strings, got markers={self.markers!r}")

    @property
    def label(self) -> str:
        """A short name of this read, e.g. 'max_prob, first token' or 'max_prob, result digits (min)'."""
        if self.at == "result":
            return f"{self.score}, first result digit" if self.aggregate == "first" else \
                f"{self.score}, result digits ({self.aggregate})"
        if self.lookahead == 1:
            return f"{self.score}, first token"
        return f"{self.score}, {self.lookahead}-token draft ({self.aggregate})"


class Router:
    """Routes steps between two models that share a vocabulary adapter (`nblib.steer.steps`)."""

    def __init__(self, small, large, vocab, fmt: StepFormat | None = None, config: RouterConfig | None = None):
        self.small, self.large, self.vocab = small, large, vocab
        self.fmt = fmt or vocab.fmt
        self.config = config or RouterConfig()
        self._is_marker: dict[int, bool] = {}
        for name, m in (("small", small), ("large", large)):
            v = getattr(getattr(m, "config", None), "vocab_size", None)
            if v is not None and v < vocab.vocab_size:
                raise ValueError(f"the {name} model has {v} output tokens but the tokenizer {vocab.name} has "
                                 f"{vocab.vocab_size}: load the model that goes with this tokenizer")

    # ------------------------------------------------------------------ public
    def run(self, prompts: Sequence[str], thresholds: Sequence[float], decider: Decider | None = None,
            batch_size: int = 64, problem_ids: Sequence[int] | None = None) -> list[list[RoutedRun]]:
        """Routed generation of every prompt at every threshold: runs[threshold_index][prompt_index]."""
        taus = check_thresholds(thresholds)
        decider = decider or ConfidenceDecider()
        if decider.reads_small and self.small is None:
            raise ValueError("this decider reads the small model's confidence, but no small model was given")
        ids = list(range(len(prompts))) if problem_ids is None else list(problem_ids)
        out: list[list[RoutedRun | None]] = [[None] * len(prompts) for _ in taus]
        for b0 in range(0, len(prompts), batch_size):
            sl = range(b0, min(b0 + batch_size, len(prompts)))
            for row in self._run_batch([prompts[i] for i in sl], [ids[i] for i in sl], taus, decider):
                i = b0 + [ids[j] for j in sl].index(row.problem)
                for t in row.taus:
                    out[t][i] = self._result(row, taus[t])
        self._check_delimiter(out)
        return out  # type: ignore[return-value]

    def generate(self, prompt: str, threshold: float, decider: Decider | None = None) -> RoutedRun:
        """One routed generation of one prompt."""
        return self.run([prompt], [threshold], decider)[0][0]

    # ------------------------------------------------------------------ internals
    def _result(self, row: Row, tau: float) -> RoutedRun:
        text = self.vocab.decode(row.ctx[row.prompt_len:])
        return RoutedRun(row.problem, row.ctx[:row.prompt_len], text, row.steps, row.events, tau)

    def _check_delimiter(self, out) -> None:
        steps = [s for runs in out for r in runs for s in r.steps]
        capped = sum(s.ended == "cap" for s in steps)
        if steps and capped and not any(s.ended == "delimiter" for s in steps):
            raise DelimiterNeverOccurs(
                f"the step delimiter {self.fmt.delimiter!r} never occurred: {capped} of {len(steps)} steps ran to the "
                f"{self.fmt.max_step_tokens}-token cap and none ended at the delimiter. Pass the delimiter your models write (StepFormat(delimiter=...)): "
                "'\\n' for the task world, '\\n\\n' (BLANK_LINE) or a 'Step k:' line (NUMBERED) for chat models")

    def _event(self, row: Row, model: str, kind: str, tokens: int, past: int, track: Track, wasted=False) -> None:
        """One forward of `tokens` tokens (one call): it generates one token, charged at its position."""
        row.events.append(Event(model, kind, tokens, past, track.flops(tokens, past), len(row.steps), wasted,
                                row.calls, track.flops(1, past + tokens - 1)))
        row.calls += 1

    def _catch_up(self, track: Track, name: str, rows: list[Row], which: list[bool]) -> torch.Tensor | None:
        """Feed each selected row the context tokens this model has not seen; logits at the last one."""
        chunks = []
        for r, w in zip(rows, which, strict=False):
            chunks.append(r.ctx[r.seen[name]:] if w else [])
        past = track.n_pos.tolist()
        logits, _ = track.feed(chunks, self.vocab.pad)
        for k, (r, c) in enumerate(zip(rows, chunks, strict=False)):
            if not c:
                continue
            own = 1 if r.steps and r.steps[-1].author == name and r.seen[name] == len(r.ctx) - len(c) \
                and r.seen[name] == r.last_end - 1 else 0  # its own last token, fed back now: a decode token
            whole = track.flops(len(c), past[k])
            if own:
                dec = track.flops(1, past[k])
                r.events.append(Event(name, "decode", 1, past[k], dec, len(r.steps), call=r.calls))
            if len(c) > own:
                r.events.append(Event(name, "prefill", len(c) - own, past[k] + own, whole - (dec if own else 0),
                                      len(r.steps), call=r.calls))
            r.events[-1].gen_flops = track.flops(1, past[k] + len(c) - 1)  # the one token this forward generated
            r.calls += 1
            r.seen[name] = len(r.ctx)
            if name == "large":
                r.handover += len(c) - own
        return logits

    def _decode_tick(self, track: Track, name: str, rows: list[Row], which: list[bool], draft=False):
        """Feed each selected row its last generated token; logits for the next."""
        chunks = [[r.cur[-1]] if w else [] for r, w in zip(rows, which, strict=False)]
        past = track.n_pos.tolist()
        col = track.length
        logits, _ = track.feed(chunks, self.vocab.pad)
        for k, (r, c) in enumerate(zip(rows, chunks, strict=False)):
            if c:
                self._event(r, name, "decode", 1, past[k], track)
                if draft:
                    r.draft_cols.append(col)
        return logits

    def _marker_at(self, ids: Sequence[int]) -> int | None:
        """Index of the first drafted token that holds a result marker (None: none yet)."""
        for k, t in enumerate(ids):
            hit = self._is_marker.get(t)
            if hit is None:
                text = self.vocab.decode([t])
                hit = self._is_marker[t] = any(m in text for m in self.config.markers)
            if hit:
                return k
        return None

    def _read_done(self, r: Row) -> bool:
        """True when the draft holds every token the confidence read needs (at='result', aggregate='first')."""
        if self.config.at != "result" or self.config.aggregate != "first":
            return False
        m = self._marker_at(r.cur)
        return m is not None and len(r.cur) > m + 1

    def _read_positions(self, r: Row) -> list[int]:
        """Positions of the draft whose scores make the step's confidence (only tokens the small model drafted)."""
        n = len(r.token_scores)
        if self.config.at == "start":
            return list(range(min(n, self.config.lookahead)))
        m = self._marker_at(r.cur)
        if m is None or m + 1 >= n:
            return list(range(n))      # no result within the draft: every drafted token
        return [m + 1] if self.config.aggregate == "first" else list(range(m + 1, n))

    def _step_over(self, r: Row) -> bool:
        if r.cur[-1] in self.vocab.eos:
            r.ended = "eos"
        elif self.vocab.ends_step(r.cur):
            r.ended = "delimiter"
        elif len(r.cur) >= self.fmt.max_step_tokens or len(r.ctx) + len(r.cur) >= self.fmt.max_tokens:
            r.ended = "cap"
        else:
            return False
        return True

    def _run_batch(self, prompts: list[str], pids: list[int], taus: list[float], decider: Decider) -> list[Row]:
        cfg, fmt, V = self.config, self.fmt, self.vocab
        rows: list[Row] = []
        for p, pid in zip(prompts, pids, strict=False):
            enc = V.encode_prompt(p)
            lo = [j for j, t in enumerate(taus) if t < 1.0]
            hi = [j for j, t in enumerate(taus) if t >= 1.0]
            if lo:
                rows.append(Row(pid, lo, list(enc), len(enc), skip_small=False))
            if hi:
                rows.append(Row(pid, hi, list(enc), len(enc), skip_small=True))
        S = Track(self.small, len(rows)) if self.small is not None else None
        L = Track(self.large, len(rows))
        finished: list[Row] = []
        while rows:
            # ---- drop finished rows, compact the caches
            keep = [k for k, r in enumerate(rows) if not r.done]
            finished += [r for r in rows if r.done]
            if not keep:
                break
            rows = [rows[k] for k in keep]
            for tr in (S, L):
                if tr is not None:
                    tr.select(keep)
                    tr.compact()
            k_step = len(rows[0].steps)
            for r in rows:
                r.cur, r.ended, r.draft_cols, r.score, r.token_scores, r.value = [], "", [], None, [], None
                r.read, r.drafted = [], []
                r.step_start_events, r.handover = len(r.events), 0
                pre = fmt.prefix(len(r.steps) + 1)
                if pre:
                    r.ctx += V.encode(pre)
            # ---- a decider that does not read the small model decides now (random routing)
            if not decider.reads_small:
                rows = self._fork(rows, decider, taus, (S, L))
            # ---- small model: catch up, first token, confidence, optional draft of the first tokens
            if S is not None:
                need = [not r.skip_small and (decider.reads_small or r.author == "small") for r in rows]
                logits = self._catch_up(S, "small", rows, need)
                if logits is not None:
                    sc = score_logits(logits, cfg.score).tolist()
                    nxt = logits.argmax(-1).tolist()
                    for r, w, s, t in zip(rows, need, sc, nxt, strict=False):
                        if w:
                            r.cur, r.token_scores = [t], [s]
                    for _ in range(cfg.lookahead - 1 if decider.reads_small else 0):
                        act = [w and not self._step_over(r) and not self._read_done(r)
                               for r, w in zip(rows, need, strict=False)]
                        if not any(act):
                            break
                        logits = self._decode_tick(S, "small", rows, act, draft=True)
                        sc = score_logits(logits, cfg.score).tolist()
                        nxt = logits.argmax(-1).tolist()
                        for r, a, s, t in zip(rows, act, sc, nxt, strict=False):
                            if a:
                                r.cur.append(t)
                                r.token_scores.append(s)
                    for r, w in zip(rows, need, strict=False):
                        if w and decider.reads_small:
                            r.read = self._read_positions(r)
                            r.score = aggregate([r.token_scores[k] for k in r.read], cfg.aggregate)
                            r.drafted = list(r.cur)
                            r.ended = ""
            if decider.reads_small:
                rows = self._fork(rows, decider, taus, (S, L))
            # ---- large-routed rows: throw away the small model's draft, catch the large model up
            for k, r in enumerate(rows):
                if r.author == "large" and S is not None and r.draft_cols:
                    S.kill(k, r.draft_cols)
                    for e in r.events[r.step_start_events:]:
                        if e.model == "small" and e.kind == "decode":
                            e.wasted = True
                    r.draft_cols = []
                if r.author == "large":
                    r.cur = []
            want = [r.author == "large" for r in rows]
            if any(want):
                logits = self._catch_up(L, "large", rows, want)
                nxt = logits.argmax(-1).tolist()
                for r, w, t in zip(rows, want, nxt, strict=False):
                    if w:
                        r.cur = [t]
            # ---- decode the step to its end, each row with its author
            while True:
                act = {m: [r.author == m and not self._step_over(r) for r in rows] for m in MODELS}
                if not any(act["small"]) and not any(act["large"]):
                    break
                for m, tr in (("small", S), ("large", L)):
                    if tr is None or not any(act[m]):
                        continue
                    logits = self._decode_tick(tr, m, rows, act[m])
                    nxt = logits.argmax(-1).tolist()
                    for r, a, t in zip(rows, act[m], nxt, strict=False):
                        if a:
                            r.cur.append(t)
            # ---- commit the step
            for r in rows:
                step_ev = r.events[r.step_start_events:]
                fl = {m: int(sum(e.flops for e in step_ev if e.model == m)) for m in MODELS}
                r.steps.append(Step(k_step, r.author, list(r.cur), V.decode(r.cur), r.ended, r.score, r.read, r.value,
                                    fl, r.handover, list(r.drafted)))
                r.ctx += r.cur
                r.last_end = len(r.ctx)
                r.seen[r.author] = len(r.ctx) - 1  # its last token is not fed back yet
                r.done = (r.ended == "eos" or fmt.is_answer(r.steps[-1].text) or len(r.steps) >= fmt.max_steps
                          or len(r.ctx) >= fmt.max_tokens)
        return finished

    def _fork(self, rows: list[Row], decider: Decider, taus: list[float], tracks) -> list[Row]:
        """Decide each row's step at each of its thresholds; split a row whose thresholds disagree."""
        src, new = [], []
        for k, r in enumerate(rows):
            if r.skip_small:
                r.author, r.value = "large", None
                src.append(k)
                new.append(r)
                continue
            if decider.reads_small:
                r.value = decider.value(r.problem, len(r.steps), r.score)
            else:
                r.value = decider.value(r.problem, len(r.steps), None)
            big = [j for j in r.taus if goes_large(r.value, taus[j])]
            small = [j for j in r.taus if j not in big]
            parts = [(m, ts) for m, ts in (("small", small), ("large", big)) if ts]
            for n, (m, ts) in enumerate(parts):
                rr = r if n == 0 else r.fork(ts)
                rr.taus, rr.author = ts, m
                src.append(k)
                new.append(rr)
        if len(new) != len(rows):
            for tr in tracks:
                if tr is not None:
                    tr.select(src)
        return new
