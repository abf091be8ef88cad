"""Verdict and self-feedback parsing, by the official rules.

A judgment holding both "[[A]]" and "[[B]]" is invalid; "[[A]]" gives A and "[[B]]" gives B; failing
those, a lone single-bracket "[A]" or "[B]" is accepted; anything else is invalid (None).
"""
from __future__ import annotations

import ast
import json
import re

from .. import checks


def parse_verdict(text: str | None) -> str | None:
    """"A", "B", or None when the judgment has no valid verdict."""
    if text is not None and not isinstance(text, str):
        raise checks.BadArgument(f"text (the judgment) must be a string or None, got {type(text).__name__} "
                                 f"{checks.short(text)}")
    if not text:
        return None
    a, b = "[[A]]" in text, "[[B]]" in text
    if a and b:
        return None
    if a or b:
        return "A" if a else "B"
    a, b = "[A]" in text, "[B]" in text
    if a != b:
        return "A" if a else "B"
    return None


def flip(verdict: str | None) -> str | None:
    """A <-> B (None stays None): the verdict that means the same after the two answers swap places."""
    return {"A": "B", "B": "A"}.get(verdict) if verdict is not None else None


def parse_feedback(text: str | None) -> dict:
    """The self-feedback's dict (score, label, learned tips, reasoning) where one can be read; always has "raw"."""
    out: dict = {"raw": text or ""}
    m = re.search(r"\{.*\}", text or "", flags=re.S)
    if m:
        for loader in (json.loads, ast.literal_eval):
            try:
                d = loader(m.group(0))
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            if isinstance(d, dict):
                out.update({str(k).strip().lower(): v for k, v in d.items()})
                break
    if "label" not in out:
        low = (text or "").lower()
        out["label"] = "not sure" if "not sure" in low else ("absolutely confident" if "confident" in low else None)
    return out
