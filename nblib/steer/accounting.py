"""Three cost accountings of the same routed runs, read from one ledger (the run's events), never by re-running.

- `generated_flops`: each generated token (kept, or a small-model draft thrown away) charged once to the model
  that generated it, at its position; reads of the other model's tokens are free. The convention of STEER's
  closest peer with code (R2R charges each emitted token to the model that emitted it).
- `flops_with_reads`: every token each model processes, KV caches kept across hand-overs: the large model pays
  for reading what the small model wrote before it writes (physically exact compute; it bounds the saving by
  the tail after the last hand-over).
- `latency_cpu` / `latency_gpu`: the run's forward passes per model (one per generated token, one per hand-over
  that reads a chunk) priced by a `LatencyProfile`: measured on this CPU for the task models, or a roofline
  for a named GPU with "as if" model sizes (labelled modelled).

`ledger_row(events)` condenses one run into what every accounting needs; `cost(row, accounting, ...)` prices it.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable

ACCOUNTINGS = ("generated_flops", "flops_with_reads", "latency_cpu", "latency_gpu")
LABELS = {"generated_flops": "generated-token FLOPs (each token charged to its writer; reads free)",
          "flops_with_reads": "FLOPs with reads (KV caches kept; the large model pays to read hand-overs)",
          "latency_cpu": "latency on this CPU (measured profile of the task models)",
          "latency_gpu": "latency on a GPU (modelled roofline, 'as if' sizes)"}
ROLES = ("small", "large")


class UnknownAccounting(ValueError):
    """An accounting name that is not one of ACCOUNTINGS."""


def check_accounting(name: str) -> str:
    """Return the accounting name, or raise UnknownAccounting listing the ones there are."""
    if name not in ACCOUNTINGS:
        raise UnknownAccounting(f"unknown cost accounting {name!r}; accountings are {ACCOUNTINGS}")
    return name


def ledger_row(events: Iterable) -> dict:
    """One run's (or part of a run's) events condensed: FLOPs, generated FLOPs, tokens and forward passes by model.

    Keys per role r in ('small', 'large'): `flops_r` (with reads), `gen_flops_r` (generated tokens),
    `gen_tokens_r` (forward passes = tokens generated, drafts included), `read_tokens_r` (tokens processed that
    the model did not generate itself: the prompt and the other model's steps), `calls_r` (tokens read per
    forward -> number of such forwards).
    """
    row = {}
    per_call: dict[tuple, list] = {}
    for r in ROLES:
        row.update({f"flops_{r}": 0, f"gen_flops_{r}": 0, f"gen_tokens_{r}": 0, f"read_tokens_{r}": 0})
    for e in events:
        row[f"flops_{e.model}"] += int(e.flops)
        row[f"gen_flops_{e.model}"] += int(e.gen_flops)
        if e.kind == "prefill":
            row[f"read_tokens_{e.model}"] += int(e.tokens)
        c = per_call.setdefault((e.model, e.call), [0])
        c[0] += int(e.tokens)
    for r in ROLES:
        sizes = [v[0] for (m, _), v in per_call.items() if m == r]
        row[f"gen_tokens_{r}"] = len(sizes)
        row[f"calls_{r}"] = dict(sorted(Counter(sizes).items()))
    return row


def add_rows(a: dict, b: dict) -> dict:
    """The ledger row of two pieces of work done one after the other (sums; forward-pass histograms merged)."""
    out = {}
    for k, v in a.items():
        if k.startswith("calls_"):
            out[k] = dict(sorted((Counter(v) + Counter(b.get(k, {}))).items()))
        elif isinstance(v, (int, float)) and k in b:
            out[k] = v + b[k]
        else:
            out[k] = v
    return out


def cost(row: dict, accounting: str, names: dict | None = None, profiles: dict | None = None) -> float:
    """The cost of one ledger row under an accounting (FLOPs, or seconds for the latency ones)."""
    check_accounting(accounting)
    if accounting == "generated_flops":
        return float(row["gen_flops_small"] + row["gen_flops_large"])
    if accounting == "flops_with_reads":
        return float(row["flops_small"] + row["flops_large"])
    profile = (profiles or {}).get(accounting)
    if profile is None:
        raise UnknownAccounting(f"the {accounting!r} accounting needs a latency profile: pass "
                                f"profiles={{{accounting!r}: steer.latency.measure_cpu(...) or roofline(...)}}")
    names = names or {}
    profile.check([names[r] for r in ROLES if r in names])   # every model of the pair, used in this row or not
    total = 0.0
    for r in ROLES:
        calls = row[f"calls_{r}"]
        if calls:
            if r not in names:
                raise ValueError(f"name the {r} model (names={{'{r}': 'v2-...'}}) to price it with a latency profile")
            total += profile.price(names[r], calls)
    return total
