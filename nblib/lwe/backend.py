"""Every LLM call of a judge, counted, cached and never fatal.

`Caller` wraps any `nblib.llm` backend. Each call goes into an `nblib.cost.Ledger` row with its role
(rubric, judge, feedback, update; score for a log-probability pass), tokens, wall time and whether it
came from the response store. A failed call (server unreachable, timeout, HTTP error) becomes a
recorded `Reply` with outcome "error", not an exception; after `max_errors` failures in a row the run
stops cleanly (`RunStopped`) with everything done so far kept. `ResponseStore` keeps every completed
response on disk, keyed by the model's fingerprint (its weights' sha256, or server URL + model id; never
only its label), prompt and settings: a run that stopped resumes from it, and judges
that send the same prompt (vanilla and Selective LWE's check) reuse one answer.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .. import llm
from ..cache import cache_dir
from ..cost import Ledger

ROLES = ("rubric", "judge", "feedback", "update")   # the generations the call-count formulas count
SCORE_ROLE = "score"                                 # a log-probability pass (fallback verdicts)
CHECK_ROLE = "check"                                 # a scoring pass of Selective LWE's debiased gate (its 2 per case)
CALL_ROLES = ROLES + (CHECK_ROLE,)                   # what "calls per case" counts


class RunStopped(RuntimeError):
    """Too many failed calls in a row: the run stops, keeping what it has (the message says why)."""


@dataclass
class Reply:
    """One call's result: its text, outcome ("ok", "empty", "error"), the error, usage, and whether cached."""

    role: str
    text: str
    outcome: str
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    cached: bool = False


class ResponseStore:
    """Completed responses as JSON lines in a file (or in memory), keyed by model fingerprint, prompt, settings.

    A line cut by a killed run is skipped (the call is redone) and reported: `skipped` lists its line numbers
    and a warning names the file. Every append starts on a fresh line, so a cut line never swallows the next row.
    """

    def __init__(self, path: str | Path | None = None, write: bool = True):
        self.path = Path(path) if path is not None else None
        self.write = write                # False: read the file, keep new rows in memory (a shipped store stays as is)
        self.rows: dict[str, dict] = {}
        self.skipped: list[int] = []      # 1-based line numbers of unreadable lines
        if self.path is not None and self.path.exists():
            for i, line in enumerate(self.path.read_text(errors="replace").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    row = None
                if not isinstance(row, dict) or not isinstance(row.get("key"), str):
                    self.skipped.append(i)    # a line cut by a killed run: skip it, the call is redone
                    continue
                self.rows[row["key"]] = row
            if self.skipped:
                import warnings

                warnings.warn(f"{self.path}: skipped {len(self.skipped)} unreadable line(s) (line "
                              f"{', '.join(map(str, self.skipped[:5]))}{' ...' if len(self.skipped) > 5 else ''}), "
                              f"probably cut by a killed run; {len(self.rows)} rows kept, those calls will be redone",
                              RuntimeWarning, stacklevel=2)

    @classmethod
    def default(cls, model_name: str) -> "ResponseStore":
        """The user cache's store for one model: $NBLIB_CACHE/lwe/<model>.jsonl."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_name)
        return cls(cache_dir() / "lwe" / f"{safe}.jsonl")

    @staticmethod
    def key(model: str, kind: str, prompt, settings: dict) -> str:
        """The sha256 of (model fingerprint (`llm.fingerprint`), kind of call, prompt, settings)."""
        text = json.dumps([model, kind, prompt, settings], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, key: str) -> dict | None:
        """The stored row for a key, or None."""
        return self.rows.get(key)

    def put(self, key: str, row: dict) -> None:
        """Store a row (and append it to the file at once, so a killed run loses nothing done)."""
        row = {"key": key, **row}
        self.rows[key] = row
        if self.path is not None and self.write:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a+b") as f:
                f.seek(0, os.SEEK_END)
                lead = b""
                if f.tell() > 0:                      # a torn last line (a killed run): start on a fresh line
                    f.seek(-1, os.SEEK_END)
                    lead = b"" if f.read(1) == b"\n" else b"\n"
                f.write(lead + (json.dumps(row) + "\n").encode())
                f.flush()
                os.fsync(f.fileno())

    def compact(self) -> int:
        """Rewrite the file with one line per key (builds that shared it may have made the same call); returns how
        many repeated lines were dropped."""
        if self.path is None or not self.path.exists():
            return 0
        lines = sum(1 for line in self.path.read_text(errors="replace").splitlines() if line.strip())
        dropped = lines - len(self.skipped) - len(self.rows)
        if dropped:
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in self.rows.values()))
            os.replace(tmp, self.path)
        return dropped

    def __len__(self) -> int:
        return len(self.rows)


def can_score(lm) -> str | None:
    """None when `lm` can give log-probabilities of chosen tokens (the log-prob judge), else the reason why not."""
    if callable(getattr(lm, "choice_logprobs", None)) or isinstance(lm, llm.LocalLLM):
        return None
    return (f"{getattr(lm, 'name', type(lm).__name__)} gives no next-token log-probabilities for chosen tokens "
            "(an HTTP server returns them only for the tokens it generates): the log-probability judge "
            "needs a local model (connect('smollm2') or a Hugging Face name/folder)")


def choice_logprobs(lm, messages: list[dict], continuation: str, options=("A", "B")) -> tuple[list[float], int]:
    """Log-probabilities of each option's first token right after prompt + continuation, and the prompt length.

    A backend may provide `choice_logprobs(messages, continuation, options)` itself (a test fake, a
    server wrapper); a `LocalLLM` is scored with one forward pass; anything else raises
    `llm.LogprobsUnavailable` with the reason.
    """
    own = getattr(lm, "choice_logprobs", None)
    if callable(own):
        return own(messages, continuation, options)
    why = can_score(lm)
    if why is not None:
        raise llm.LogprobsUnavailable(why)
    import torch

    tok = lm.tokenizer
    text = lm.format(messages) + continuation
    ids = tok(text, add_special_tokens=False)["input_ids"]
    firsts = []
    for opt in options:
        full = tok(text + opt, add_special_tokens=False)["input_ids"]
        k = 0
        while k < min(len(ids), len(full)) and ids[k] == full[k]:
            k += 1
        if k < len(ids) or k >= len(full):   # the option merged into the continuation's last token
            raise llm.LogprobsUnavailable(f"the option {opt!r} does not start a new token after {continuation!r}")
        firsts.append(full[k])
    # only the last position's logits where the model allows it: Gemma's 262k-word head over every position
    # doubles the pass
    last = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(lm.model.forward).parameters else {}
    with torch.no_grad():
        logits = lm.model(input_ids=torch.tensor([ids], device=lm.device), **last).logits[0, -1].float()
    lp = torch.log_softmax(logits, -1)
    return [float(lp[t]) for t in firsts], len(ids)


class Caller:
    """A backend behind a ledger and a response store; calls return `Reply`s and never raise backend errors."""

    def __init__(self, lm, ledger: Ledger | None = None, store: ResponseStore | None = None, method: str = "",
                 max_errors: int = 3, settings: dict | None = None):
        if max_errors < 1:
            raise ValueError(f"max_errors must be at least 1, got {max_errors}")
        self.lm, self.method, self.max_errors = lm, method, max_errors
        self.ledger = ledger if ledger is not None else Ledger()
        self.store = store if store is not None else ResponseStore()
        self.settings = dict(settings or {})
        self.model = str(getattr(lm, "name", type(lm).__name__))   # the label shown in records
        self.fingerprint = llm.fingerprint(lm)                       # what the store keys on: weights or URL+id
        self.case = ""
        self.errors_in_a_row = 0
        self.errors: list[str] = []

    def _record(self, role: str, r: Reply) -> Reply:
        self.ledger.add(role, prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens, calls=1,
                        wall_ms=r.wall_s * 1e3, method=self.method, case=self.case, cached=r.cached,
                        outcome=r.outcome)
        return r

    def _failed(self, role: str, err: Exception, t0: float) -> Reply:
        msg = f"{type(err).__name__}: {err}"
        self.errors.append(msg)
        self.errors_in_a_row += 1
        r = self._record(role, Reply(role, "", "error", msg, wall_s=time.perf_counter() - t0))
        if self.errors_in_a_row >= self.max_errors:
            raise RunStopped(f"{self.errors_in_a_row} calls in a row failed; last: {msg}")
        return r

    def generate(self, role: str, messages: list[dict], max_new_tokens: int) -> Reply:
        """One greedy generation for `role`; from the store when this exact call was made before."""
        settings = {**self.settings, "max_new_tokens": max_new_tokens, "temperature": 0.0}
        key = self.store.key(self.fingerprint, "generate", messages, settings)
        row = self.store.get(key)
        if row is not None:
            self.errors_in_a_row = 0
            return self._record(role, Reply(role, row["text"], row["outcome"], None, row["prompt_tokens"],
                                            row["completion_tokens"], row["wall_s"], cached=True))
        t0 = time.perf_counter()
        try:
            g = self.lm.generate(messages, max_new_tokens=max_new_tokens, temperature=0.0)
        except (llm.LLMError, OSError, TimeoutError) as e:   # unreachable server, timeout, HTTP error
            return self._failed(role, e, t0)
        self.errors_in_a_row = 0
        text = g.text or ""
        outcome = "ok" if text.strip() else "empty"
        wall = g.usage.wall_s or (time.perf_counter() - t0)
        self.store.put(key, {"model": self.model, "kind": "generate", "text": text, "outcome": outcome,
                             "prompt_tokens": g.usage.prompt_tokens, "completion_tokens": g.usage.completion_tokens,
                             "wall_s": wall})
        return self._record(role, Reply(role, text, outcome, None, g.usage.prompt_tokens,
                                        g.usage.completion_tokens, wall))

    def margin(self, messages: list[dict], continuation: str, role: str = SCORE_ROLE) -> tuple[float | None, str | None]:
        """log P("A") - log P("B") after prompt + continuation (one scoring pass, under `role`), or (None, why not)."""
        key = self.store.key(self.fingerprint, "score", [messages, continuation], dict(self.settings))
        row = self.store.get(key)
        if row is not None:
            self._record(role, Reply(role, "", "ok", None, row["prompt_tokens"], 0, row["wall_s"], True))
            return row["margin"], None
        t0 = time.perf_counter()
        try:
            (la, lb), n = choice_logprobs(self.lm, messages, continuation)
        except llm.LogprobsUnavailable as e:
            return None, str(e)                 # not a call: the backend cannot do it
        except (llm.LLMError, OSError, TimeoutError) as e:
            self._failed(role, e, t0)
            return None, str(e)
        wall = time.perf_counter() - t0
        self.store.put(key, {"model": self.model, "kind": "score", "margin": la - lb, "prompt_tokens": n,
                             "wall_s": wall})
        self._record(role, Reply(role, "", "ok", None, n, 0, wall))
        return la - lb, None

    def calls_by_role(self) -> dict[str, int]:
        """Calls in the ledger per role."""
        out: dict[str, int] = {}
        for e in self.ledger.entries:
            out[e.name] = out.get(e.name, 0) + e.calls
        return out
