"""The four judges: Vanilla (both orders), SSP, LWE and Selective LWE, plus a log-probability baseline.

Each `run_*` streams the cases in the given order and returns a `RunRecord`: one row per case (verdicts in
both orders where the method has them, how each verdict was obtained, the texts), the meta-prompt history,
and the calls per role from the `nblib.cost` ledger. Labels (`Case.better`) are never read here.

Per case, in LLM generations (B = update batch size, r = share of swap-inconsistent cases):
vanilla 2; SSP 4; LWE 5 + 1/B with the swapped run (3 + 1/B without); Selective LWE 2 + r (3 + 1/B).
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

from .. import checks
from ..cost import Ledger
from ..llm import LogprobsUnavailable
from . import prompts
from . import debias
from .backend import CALL_ROLES, CHECK_ROLE, Caller, ResponseStore, RunStopped, can_score
from .data import Case
from .parse import flip, parse_feedback, parse_verdict

METHODS = ("vanilla", "logprob", "ssp", "lwe", "selective")


@dataclass(frozen=True)
class JudgeConfig:
    """The judges' settings: update batch size, the 726-character rule, token caps per role, fallback, swap."""

    batch_size: int = 4              # B: cases per meta-prompt update (and per Selective LWE check batch)
    min_meta_chars: int = 726        # a rewrite shorter than this is a failed generation: M is kept
    rubric_tokens: int = 48          # max new tokens per role (a 135M model at ~10 tokens/s on a CPU core needs
    judge_tokens: int = 24           # caps; `JudgeConfig.uncapped()` gives a served model room to reason)
    feedback_tokens: int = 40
    update_tokens: int = 224
    max_answer_chars: int = 600      # each answer in a prompt is clipped to this
    fallback: bool = True            # unparseable verdict -> compare log P([[A) and log P([[B)
    run_swap: bool = True            # LWE: also judge the swapped order (metrics only; +2 calls per case)
    meta_prompt: str = prompts.INITIAL_META_PROMPT
    gate: str = "parsed"             # Selective LWE's check: "parsed" (the paper's: generated verdicts in both orders)
                                     # or "debiased" (adaptation: per-order log-prob verdicts minus the position prior)
    prior: float | None = None       # the debiased gate's position prior in nats; None: measure it on content-free
                                     # pairs at the start of the run (`debias.content_free_prior`); 0.0: the raw verdict

    def __post_init__(self):
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer (the paper uses 4), got {self.batch_size!r}")
        for f in ("rubric_tokens", "judge_tokens", "feedback_tokens", "update_tokens", "max_answer_chars"):
            v = getattr(self, f)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{f} must be a positive integer, got {v!r}")
        if self.min_meta_chars < 0:
            raise ValueError(f"min_meta_chars must be >= 0 (the official rule is 726), got {self.min_meta_chars}")
        if not self.meta_prompt.strip():
            raise ValueError("meta_prompt must be a non-empty text")
        checks.one_of("gate", self.gate, ("parsed", "debiased"))
        if self.prior is not None:
            checks.number("prior", self.prior, hint="the position prior in nats; None measures it, 0.0 is flat")

    @classmethod
    def uncapped(cls, **overrides) -> "JudgeConfig":
        """Settings for a strong served judge: long rubrics, judgments, feedback and rewrites, long answers."""
        base = dict(rubric_tokens=1024, judge_tokens=1024, feedback_tokens=1024, update_tokens=2048,
                    max_answer_chars=6000)
        return cls(**{**base, **overrides})


@dataclass
class RunRecord:
    """One judge's run over a stream: per-case rows, meta-prompt history, calls per role, status."""

    method: str
    model: str
    config: dict
    cases: list[dict] = field(default_factory=list)
    meta_history: list[dict] = field(default_factory=list)
    calls: dict = field(default_factory=dict)
    tokens: dict = field(default_factory=dict)
    status: str = "complete"
    errors: list = field(default_factory=list)
    wall_s: float = 0.0          # seconds of model time (a cached call counts the time it took when made)
    fresh_wall_s: float = 0.0    # seconds this run actually spent

    @property
    def n(self) -> int:
        """Cases judged."""
        return len(self.cases)

    def generations(self) -> int:
        """Model calls the call-count formulas count: generations (rubric, judge, feedback, update) and the
        debiased gate's check passes (2 per case, in place of the paper's two vanilla generations)."""
        return sum(self.calls.get(r, 0) for r in CALL_ROLES)

    def calls_per_case(self) -> float:
        """Generations per case judged."""
        return self.generations() / self.n if self.n else float("nan")

    def to_json(self) -> dict:
        """A plain dict (for data/lwe/*.json)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "RunRecord":
        """The record written by `to_json`."""
        return cls(**d)


# ----------------------------------------------------------------------------- one judging step
def _example(case: Case, cfg: JudgeConfig, swapped: bool = False) -> str:
    a, b = (case.output2, case.output1) if swapped else (case.output1, case.output2)
    return prompts.example_block(case.question, a, b, cfg.max_answer_chars)


def _outcome(reply) -> str:
    if reply.outcome != "ok":
        return reply.outcome                     # "empty" or "error"
    return "parsed" if parse_verdict(reply.text) is not None else "unparseable"


def _resolve(caller: Caller, cfg: JudgeConfig, orig: tuple, swap: tuple | None = None) -> tuple[dict, dict | None]:
    """Verdicts for the original (and swapped) order: parsed, else the log-prob fallback (both orders averaged).

    `orig`/`swap` are (messages, reply). Returns per order {"verdict", "outcome", "verdict_from", "margin"}.
    """
    def one(msgs, reply):
        return {"verdict": parse_verdict(reply.text), "outcome": _outcome(reply), "verdict_from": "parse",
                "margin": None}

    o = one(*orig)
    s = one(*swap) if swap is not None else None
    need = [x for x in (o, s) if x is not None and x["verdict"] is None and x["outcome"] != "error"]
    if not need or not cfg.fallback:
        for x in (o, s):
            if x is not None and x["verdict"] is None:
                x["verdict_from"] = "none"
        return o, s
    m_o, why = caller.margin(orig[0], orig[1].text + prompts.FALLBACK_CONTINUATION)
    m_s = None
    if m_o is not None and swap is not None:
        m_s, why = caller.margin(swap[0], swap[1].text + prompts.FALLBACK_CONTINUATION)
    if m_o is None or (swap is not None and m_s is None):
        for x in need:
            x["verdict_from"], x["fallback_error"] = "none", why
        return o, s
    score = m_o if m_s is None else (m_o - m_s) / 2     # > 0: the first-shown answer (output1) is preferred
    o["margin"], s_margin = m_o, m_s
    if s is not None:
        s["margin"] = s_margin
    for x, verdict in ((o, "A" if score > 0 else "B"), (s, "B" if score > 0 else "A")):
        if x is not None and any(x is y for y in need):
            x["verdict"], x["verdict_from"] = verdict, "logprob"
    return o, s


def _vanilla_pair(caller: Caller, case: Case, cfg: JudgeConfig) -> tuple:
    """The fixed judge in both orders: (messages, reply) for each."""
    mo, ms = prompts.vanilla(_example(case, cfg)), prompts.vanilla(_example(case, cfg, swapped=True))
    return (mo, caller.generate("judge", mo, cfg.judge_tokens)), (ms, caller.generate("judge", ms, cfg.judge_tokens))


def _rubric_and_judge(caller: Caller, meta: str, case: Case, cfg: JudgeConfig, swapped: bool = False) -> tuple:
    """Rubric from the meta-prompt, then the judgment with it: (rubric text, judge messages, judge reply)."""
    ex = _example(case, cfg, swapped)
    rub = caller.generate("rubric", prompts.rubric(meta, ex), cfg.rubric_tokens)
    msgs = prompts.judge(rub.text, ex)
    return rub.text, msgs, caller.generate("judge", msgs, cfg.judge_tokens)


def _lwe_step(caller: Caller, meta: str, case: Case, cfg: JudgeConfig) -> dict:
    """LWE steps 1-3 on the original order: rubric, judgment, self-feedback."""
    rub, msgs, rep = _rubric_and_judge(caller, meta, case, cfg)
    ex = _example(case, cfg)
    fb = caller.generate("feedback", prompts.feedback(meta, rub, ex, rep.text, cfg.max_answer_chars),
                         cfg.feedback_tokens)
    return {"rubric": rub, "messages": msgs, "reply": rep, "feedback": fb.text,
            "feedback_parsed": parse_feedback(fb.text), "question": case.question}


def _update(caller: Caller, meta: str, version: int, records: list[dict], cfg: JudgeConfig, after: int) -> tuple:
    """One editor call; the rewrite replaces M only when it has at least `min_meta_chars` characters."""
    rep = caller.generate("update", prompts.update(meta, records, cfg.max_answer_chars // 2), cfg.update_tokens)
    cand = rep.text.strip()
    accepted = rep.outcome == "ok" and len(cand) >= cfg.min_meta_chars
    reason = ("accepted" if accepted else rep.outcome if rep.outcome != "ok"
              else f"rejected: {len(cand)} < {cfg.min_meta_chars} characters")
    new_meta, new_version = (cand, version + 1) if accepted else (meta, version)
    entry = {"version": new_version, "after_case": after, "accepted": accepted, "reason": reason,
             "candidate": cand, "candidate_chars": len(cand), "text": new_meta,
             "batch": [r["id"] for r in records]}
    return new_meta, new_version, entry


def _row(case: Case, o: dict, s: dict | None, **extra) -> dict:
    row = {"id": case.id, "better": case.better, "verdict": o["verdict"], "outcome": o["outcome"],
           "verdict_from": o["verdict_from"], "margin": o["margin"], "swap_margin": s["margin"] if s else None,
           "swap_verdict": s["verdict"] if s else None, "swap_outcome": s["outcome"] if s else None,
           "swap_verdict_from": s["verdict_from"] if s else None}
    why = o.get("fallback_error") or (s or {}).get("fallback_error")
    if why:
        row["fallback_error"] = why
    row.update(extra)
    return row


# ----------------------------------------------------------------------------- running a stream
def _start(method: str, lm, cfg: JudgeConfig, store: ResponseStore | None, max_errors: int):
    caller = Caller(lm, Ledger(), store, method=method, max_errors=max_errors)
    rec = RunRecord(method=method, model=caller.model, config={**dataclasses.asdict(cfg), "method": method})
    return caller, rec


def _finish(caller: Caller, rec: RunRecord, t0: float) -> RunRecord:
    calls, toks, wall = {}, {}, 0.0
    for e in caller.ledger.entries:
        calls[e.name] = calls.get(e.name, 0) + e.calls
        t = toks.setdefault(e.name, {"prompt": 0, "completion": 0})
        t["prompt"] += e.prompt_tokens
        t["completion"] += e.completion_tokens
        wall += (e.wall_ms or 0) / 1e3
    rec.calls, rec.tokens, rec.wall_s = calls, toks, wall
    rec.fresh_wall_s = time.perf_counter() - t0
    rec.errors = list(caller.errors)
    return rec


def run(method: str, lm, cases: list[Case], cfg: JudgeConfig | None = None, store: ResponseStore | None = None,
        max_errors: int = 3, progress=None) -> RunRecord:
    """Judge `cases` in order with one method ("vanilla", "logprob", "ssp", "lwe", "selective")."""
    if not isinstance(method, str) or method not in METHODS:
        raise checks.BadArgument(f"unknown method {method!r}: method must be one of {list(METHODS)}")
    if isinstance(lm, str):
        raise TypeError(f"lm must be a language model, not the string {lm!r}: open it first, "
                        f"lm = nblib.llm.connect({lm!r}), then lwe.run({method!r}, lm, cases)")
    if not callable(getattr(lm, "generate", None)):
        raise TypeError(f"lm must be a language model with .generate (nblib.llm.connect(...)), "
                        f"got a {type(lm).__name__}")
    if isinstance(cases, (str, bytes)) or not cases:
        raise ValueError("no cases to judge: pass a non-empty list (e.g. lwe.data.stream(lwe.data.load(), n=8))")
    if not all(isinstance(c, Case) for c in cases):
        bad = next(c for c in cases if not isinstance(c, Case))
        raise TypeError(f"cases must be lwe.Case items (lwe.data.load / lwe.data.stream), got a {type(bad).__name__}")
    if cfg is not None and not isinstance(cfg, JudgeConfig):
        raise TypeError(f"cfg must be a lwe.JudgeConfig, got {type(cfg).__name__}")
    checks.whole("max_errors", max_errors, low=1)
    if method == "logprob":   # refuse before any call, instead of a 'complete' run with every verdict missing
        why = can_score(lm)
        if why is not None:
            raise LogprobsUnavailable(f"lwe.run('logprob', ...): {why}")
    cfg = cfg or JudgeConfig()
    caller, rec = _start(method, lm, cfg, store, max_errors)
    t0 = time.perf_counter()
    step = {"vanilla": _run_vanilla, "logprob": _run_logprob, "ssp": _run_ssp, "lwe": _run_lwe,
            "selective": _run_selective}[method]
    try:
        step(caller, rec, cases, cfg, progress)
    except RunStopped as e:
        rec.status = f"stopped after {rec.n} of {len(cases)} cases: {e}; re-run to resume from the response store"
    return _finish(caller, rec, t0)


def _tick(progress):
    if progress is not None:
        progress.update(1)


def _run_vanilla(caller, rec, cases, cfg, progress):
    for case in cases:
        caller.case = case.id
        (mo, ro), (ms, rs) = _vanilla_pair(caller, case, cfg)
        o, s = _resolve(caller, cfg, (mo, ro), (ms, rs))
        rec.cases.append(_row(case, o, s, judgment=ro.text, swap_judgment=rs.text))
        _tick(progress)


def _run_logprob(caller, rec, cases, cfg, progress):
    """The vanilla prompt scored, not generated: log P(A) - log P(B) after "[[", both orders averaged."""
    for case in cases:
        caller.case = case.id
        mo, ms = prompts.vanilla(_example(case, cfg)), prompts.vanilla(_example(case, cfg, swapped=True))
        m_o, why = caller.margin(mo, prompts.SCORE_CONTINUATION)
        m_s, why2 = caller.margin(ms, prompts.SCORE_CONTINUATION) if m_o is not None else (None, why)
        if m_o is None or m_s is None:
            o = {"verdict": None, "outcome": "error", "verdict_from": "none", "margin": m_o}
            s = {"verdict": None, "outcome": "error", "verdict_from": "none", "margin": m_s}
            rec.cases.append(_row(case, o, s, fallback_error=why or why2))
        else:
            score = (m_o - m_s) / 2
            o = {"verdict": "A" if score > 0 else "B", "outcome": "scored", "verdict_from": "logprob", "margin": m_o}
            s = {"verdict": "B" if score > 0 else "A", "outcome": "scored", "verdict_from": "logprob", "margin": m_s}
            rec.cases.append(_row(case, o, s, first_choice_orig="A" if m_o > 0 else "B",
                                  first_choice_swap="A" if m_s > 0 else "B"))
        _tick(progress)


def _run_ssp(caller, rec, cases, cfg, progress):
    """Sample-specific prompts from a fixed (never updated) meta-prompt, both orders."""
    meta = cfg.meta_prompt
    rec.meta_history.append({"version": 0, "after_case": 0, "accepted": True, "reason": "initial",
                             "candidate": meta, "candidate_chars": len(meta), "text": meta, "batch": []})
    for case in cases:
        caller.case = case.id
        rub, mo, ro = _rubric_and_judge(caller, meta, case, cfg)
        rub_s, ms, rs = _rubric_and_judge(caller, meta, case, cfg, swapped=True)
        o, s = _resolve(caller, cfg, (mo, ro), (ms, rs))
        rec.cases.append(_row(case, o, s, rubric=rub, judgment=ro.text, swap_rubric=rub_s, swap_judgment=rs.text))
        _tick(progress)


def _batches(items: list, b: int):
    for i in range(0, len(items), b):
        yield items[i:i + b]


def _run_lwe(caller, rec, cases, cfg, progress):
    """Full LWE: per batch of B, rubric + judgment + self-feedback per case (and the swapped run), then one update."""
    meta, version, done = cfg.meta_prompt, 0, 0
    rec.meta_history.append({"version": 0, "after_case": 0, "accepted": True, "reason": "initial",
                             "candidate": meta, "candidate_chars": len(meta), "text": meta, "batch": []})
    for batch in _batches(cases, cfg.batch_size):
        records = []
        for case in batch:
            caller.case = case.id
            st = _lwe_step(caller, meta, case, cfg)
            swap = None
            if cfg.run_swap:
                rub_s, ms, rs = _rubric_and_judge(caller, meta, case, cfg, swapped=True)
                swap = (ms, rs)
            o, s = _resolve(caller, cfg, (st["messages"], st["reply"]), swap)
            extra = {"meta_version": version, "used_lwe": True, "rubric": st["rubric"], "judgment": st["reply"].text,
                     "feedback": st["feedback"], "feedback_label": st["feedback_parsed"].get("label")}
            if swap is not None:
                extra.update(swap_rubric=rub_s, swap_judgment=rs.text)
            rec.cases.append(_row(case, o, s, **extra))
            records.append({"id": case.id, "rubric": st["rubric"], "question": st["question"],
                            "judgment": st["reply"].text, "feedback": st["feedback"]})
            _tick(progress)
        done += len(batch)
        caller.case = f"update after {done}"
        meta, version, entry = _update(caller, meta, version, records, cfg, done)
        rec.meta_history.append(entry)


def _debiased_check(caller, case: Case, cfg: JudgeConfig, prior: float) -> dict:
    """The debiased gate for one case: per-order log-prob margins (2 check passes), verdicts minus the prior."""
    mo, ms = prompts.vanilla(_example(case, cfg)), prompts.vanilla(_example(case, cfg, swapped=True))
    m_o, why = caller.margin(mo, prompts.SCORE_CONTINUATION, role=CHECK_ROLE)
    m_s, why2 = caller.margin(ms, prompts.SCORE_CONTINUATION, role=CHECK_ROLE) if m_o is not None else (None, why)
    if m_o is None or m_s is None:
        return {"v": None, "vs": None, "m_o": m_o, "m_s": m_s, "why": why or why2}
    return {"v": debias.verdict(m_o, prior), "vs": debias.verdict(m_s, prior), "m_o": m_o, "m_s": m_s, "why": None}


def _run_selective(caller, rec, cases, cfg, progress):
    """Selective LWE: the vanilla check in both orders; LWE (and the update buffer) only for inconsistent cases.

    cfg.gate "parsed" is the paper's check (two generated verdicts); "debiased" (an adaptation) checks the
    per-order log-prob verdicts after subtracting the position prior (`debias`)."""
    meta, version, done, buffer = cfg.meta_prompt, 0, 0, []
    rec.meta_history.append({"version": 0, "after_case": 0, "accepted": True, "reason": "initial",
                             "candidate": meta, "candidate_chars": len(meta), "text": meta, "batch": []})
    prior = cfg.prior
    if cfg.gate == "debiased" and prior is None:
        caller.case = "content-free calibration"
        prior, why = debias.content_free_prior(caller, cfg.max_answer_chars, role="calibrate")
        if prior is None:
            raise RunStopped(f"the debiased gate cannot measure the position prior: {why}")
    rec.config["position_prior"] = prior
    for batch in _batches(cases, cfg.batch_size):
        for case in batch:
            caller.case = case.id
            if cfg.gate == "debiased":
                chk = _debiased_check(caller, case, cfg, prior)
                v, vs = chk["v"], chk["vs"]
                ro = rs = None
            else:
                (mo, ro), (ms, rs) = _vanilla_pair(caller, case, cfg)
                v, vs = parse_verdict(ro.text), parse_verdict(rs.text)
            consistent = v is not None and vs is not None and v == flip(vs)
            if consistent and cfg.gate == "debiased":
                o = {"verdict": v, "outcome": "scored", "verdict_from": "debiased", "margin": chk["m_o"]}
                s = {"verdict": vs, "outcome": "scored", "verdict_from": "debiased", "margin": chk["m_s"]}
                rec.cases.append(_row(case, o, s, used_lwe=False, consistent_vanilla=True, meta_version=version))
            elif consistent:
                o, s = _resolve(caller, cfg, (mo, ro), (ms, rs))
                rec.cases.append(_row(case, o, s, used_lwe=False, consistent_vanilla=True, meta_version=version,
                                      judgment=ro.text, swap_judgment=rs.text))
            else:
                st = _lwe_step(caller, meta, case, cfg)
                o, _ = _resolve(caller, cfg, (st["messages"], st["reply"]))
                # the official code keeps the vanilla swapped verdict for an inconsistent case
                if cfg.gate == "debiased":
                    s = {"verdict": vs, "outcome": "scored" if vs else "error",
                         "verdict_from": "debiased" if vs else "none", "margin": chk["m_s"]}
                    if chk["why"]:
                        o["fallback_error"] = chk["why"]
                else:
                    s = {"verdict": vs, "outcome": _outcome(rs), "verdict_from": "parse" if vs else "none",
                         "margin": None}
                rec.cases.append(_row(case, o, s, used_lwe=True, consistent_vanilla=False, meta_version=version,
                                      vanilla_verdict=v, vanilla_judgment=ro.text if ro else None,
                                      swap_judgment=rs.text if rs else None,
                                      rubric=st["rubric"], judgment=st["reply"].text, feedback=st["feedback"],
                                      feedback_label=st["feedback_parsed"].get("label")))
                buffer.append({"id": case.id, "rubric": st["rubric"], "question": st["question"],
                               "judgment": st["reply"].text, "feedback": st["feedback"]})
            _tick(progress)
        done += len(batch)
        while len(buffer) >= cfg.batch_size:
            caller.case = f"update after {done}"
            meta, version, entry = _update(caller, meta, version, buffer[:cfg.batch_size], cfg, done)
            rec.meta_history.append(entry)
            buffer = buffer[cfg.batch_size:]
    if buffer:                                             # flush the remainder at the end of the stream
        caller.case = f"update after {done}"
        meta, version, entry = _update(caller, meta, version, buffer, cfg, done)
        rec.meta_history.append(entry)


def expected_calls(method: str, n: int, batch_size: int = 4, inconsistent: int | None = None,
                   run_swap: bool = True) -> int:
    """The exact generation count of the official code for n cases (`inconsistent`: Selective LWE's count)."""
    checks.one_of("method", method, METHODS)
    n = checks.whole("n (cases judged)", n, low=0)
    batch_size = checks.whole("batch_size", batch_size, low=1)
    if method == "vanilla":
        return 2 * n
    if method == "logprob":
        return 0
    if method == "ssp":
        return 4 * n
    if method == "lwe":
        return (5 if run_swap else 3) * n + math.ceil(n / batch_size)
    if method == "selective":
        if inconsistent is None:
            raise checks.BadArgument("Selective LWE's count needs inconsistent (the number of inconsistent cases)")
        inconsistent = checks.whole("inconsistent (cases whose two orders disagree)", inconsistent, low=0, high=n)
        return 2 * n + 3 * inconsistent + math.ceil(inconsistent / batch_size)
    raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")


def formula_calls_per_case(method: str, batch_size: int = 4, r: float = 1.0, run_swap: bool = True) -> float:
    """Calls per case by the brief's formulas: 2, 0, 4, 5 + 1/B (3 + 1/B without swap), 2 + r (3 + 1/B)."""
    checks.one_of("method", method, METHODS)
    checks.number("r", r, 0, 1, hint="the share of swap-inconsistent cases")
    checks.whole("batch_size", batch_size, low=1)
    b = 1.0 / batch_size
    return {"vanilla": 2.0, "logprob": 0.0, "ssp": 4.0, "lwe": (5.0 if run_swap else 3.0) + b,
            "selective": 2.0 + r * (3.0 + b)}[method]

