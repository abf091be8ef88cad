"""Pairwise cases with known ground truth: BIG-bench hhh_alignment and MT-Bench (GPT-4 reference vs SmolLM2).

A `Case` is one row of the official schema (ID, Text, Output1, Output2, Better). The judges see
`question`, `output1` and `output2`; `better` (the label) is read only by the metrics. `stream`
shuffles the cases in a fixed seeded order, as the official code does before processing.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace
from pathlib import Path

from .. import checks

DATA = Path(__file__).resolve().parents[2] / "data" / "lwe"
SETS = {"hhh": "hhh_pairs.jsonl", "mtbench": "mtbench_pairs.jsonl"}
SEED = 123  # the official default seed


@dataclass(frozen=True)
class Case:
    """One pairwise test case; `better` is "A" when output1 is preferred, "B" when output2 is."""

    id: str
    question: str
    output1: str
    output2: str
    better: str
    source: str = ""
    subset: str = ""

    def __post_init__(self):
        if self.better not in ("A", "B"):
            raise ValueError(f"case {self.id}: better must be 'A' or 'B', got {self.better!r}")
        if not self.question.strip() or not self.output1.strip() or not self.output2.strip():
            raise ValueError(f"case {self.id}: question and both outputs must be non-empty")

    def swapped(self) -> "Case":
        """The same case with the two responses exchanged (the label follows them)."""
        return replace(self, output1=self.output2, output2=self.output1, better="B" if self.better == "A" else "A")


def read_jsonl(path: str | Path) -> tuple[dict, list[Case]]:
    """A data/lwe file: its provenance header and its cases."""
    from ..cache import read_jsonl as read_rows

    lines = read_rows(path, "python scripts/build_lwe_data.py")   # a bad line names the file, line and script
    path = Path(path)
    if not lines or "source" not in lines[0] or "id" in lines[0]:
        raise ValueError(f"{path}: the first line must be the provenance header")
    cases = [Case(id=r["id"], question=r["question"], output1=r["output1"], output2=r["output2"],
                  better="A" if r["better"] == "Output1" else "B", source=r.get("source", ""),
                  subset=r.get("subset", "")) for r in lines[1:]]
    return lines[0], cases


def load(name: str = "hhh") -> list[Case]:
    """The shipped cases of one set: "hhh" (221 BIG-bench hhh_alignment pairs) or "mtbench" (30 pairs)."""
    if name not in SETS:
        raise ValueError(f"unknown case set {name!r}; choose one of {sorted(SETS)}")
    return read_jsonl(DATA / SETS[name])[1]


def provenance(name: str = "hhh") -> dict:
    """The provenance header (source, sha256, licence, rebuild command) of one shipped set."""
    if name not in SETS:
        raise ValueError(f"unknown case set {name!r}; choose one of {sorted(SETS)}")
    return read_jsonl(DATA / SETS[name])[0]


def stream(cases: list[Case], n: int | None = None, seed: int = SEED) -> list[Case]:
    """The first n cases of a seeded shuffle (the same order for every judge and every n)."""
    if n is not None:
        n = checks.whole("n", n)
        if n < 1:
            raise checks.BadArgument(f"n must be at least 1 (or None for all {len(cases)} cases), got {n}")
    order = list(cases)
    random.Random(seed).shuffle(order)
    return order if n is None else order[:n]
