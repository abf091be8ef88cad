"""Computed prose: sentences and verdicts rendered from results, never typed.

A number in a notebook's prose that comes from a measurement is rendered from
that measurement, in a code cell whose output is Markdown:

    prose.markdown(prose.verdict(ours=("CAST", 2.49), others={"chain": 2.15, "EAGLE-2 tree": 1.37},
                                 unit="x `generate`"))
    # -> CAST: 2.49x `generate`; strongest other method: chain, 2.15x

so a re-run changes the sentence with the numbers, and a sentence can never
contradict the table above it. Typed numbers are left for the papers' figures
(with their source) and the notebook's parameters; `markdown_numbers` finds the
others, and `tests/test_prose.py` holds them to an explicit allow-list
(`tests/prose_allowlist.txt`, rebuilt with `python -m nblib.prose`).

Formatting: `number` (thousands separators, fixed decimals, a unit), `percent`
(a fraction as "53 %"), `times` (a ratio as "2.49x").
"""
from __future__ import annotations

import io
import json
import math
import numbers
import re
import tokenize
from pathlib import Path
from typing import NamedTuple

from . import style


# --- numbers in a sentence ----------------------------------------------------------------------------------------
def _check_finite(x, what: str) -> float:
    if isinstance(x, bool) or not isinstance(x, numbers.Real):   # a string or a bool is no measurement
        raise TypeError(f"{what} must be a number, got {x!r} ({type(x).__name__})")
    v = float(x)
    if not math.isfinite(v):
        raise ValueError(f"{what} is {v}: there is no measurement to state (filter NaN rows before rendering prose)")
    return v


def _check_style(unit, decimals) -> int:
    from . import checks

    if not isinstance(unit, str):
        raise TypeError(f"unit must be a string (e.g. ' ms' or 'x'), got {unit!r} ({type(unit).__name__})")
    return checks.whole("decimals", decimals, low=0, high=MAX_DECIMALS)


MAX_DECIMALS = 12  # more digits than a float holds are not a measurement


def number(x, unit: str = "", decimals: int = 2) -> str:
    """A number for prose: thousands separators and fixed decimals, then `unit` as given ("2,634 ms", "2.49x")."""
    v = _check_finite(x, "number")
    decimals = _check_style(unit, decimals)
    body = style.fmt_int(v) if decimals == 0 else style.fmt_float(v, decimals)
    return body + unit


def percent(fraction, decimals: int = 0) -> str:
    """A fraction as a percentage in the suite's style: 0.532 -> "53 %"."""
    return number(100 * _check_finite(fraction, "fraction"), " %", decimals)


def times(ratio, decimals: int = 2) -> str:
    """A ratio as a multiple: 2.4913 -> "2.49x"."""
    return number(_check_finite(ratio, "ratio"), "x", decimals)


# --- the verdict against the strongest other method ---------------------------------------------------------------
def strongest(others: dict, higher_is_better: bool = True) -> tuple[str, float]:
    """The best entry of `others` (name -> value), skipping NaN and None: ("chain", 2.15)."""
    if not isinstance(others, dict):
        raise TypeError(f"others must be a dict of method name -> value, got {type(others).__name__} {others!r:.80}")
    vals = {}
    for k, v in others.items():
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"others[{k!r}] must be a number (or None / NaN for a method without one), got {v!r}")
        if math.isfinite(float(v)):                  # NaN and inf: no measurement, skipped
            vals[k] = float(v)
    if not vals:
        raise ValueError(f"no finite value among the other methods {list(others)}: nothing to compare against")
    pick = max if higher_is_better else min
    name = pick(vals, key=vals.get)
    return name, vals[name]


def verdict(ours: tuple, others: dict, unit: str = "", higher_is_better: bool = True, decimals: int = 2,
            margin: float | None = None) -> str:
    """One sentence: our result beside the strongest other method's, both computed.

    `ours` is (name, value); `others` maps name -> value (ours is left out if present; NaN is skipped).
    `unit`'s first word (with any leading space) is glued to each number; the words after it name the quantity and
    follow our number only: unit="x generate" -> "CAST: 2.49x generate; strongest other method: chain, 2.15x";
    unit=" ms per token" -> "ours: 12 ms per token; strongest other method: dense, 15 ms".
    With `margin` (e.g. the spread of the repeats, in the value's units) the sentence also says who leads,
    or that the gap is within the margin: a gap no larger than the margin is never called a win.
    """
    if not (isinstance(ours, tuple) and len(ours) == 2):
        raise TypeError(f"ours must be a (name, value) pair, got {ours!r}")
    name, value = ours
    if not isinstance(name, str):
        raise TypeError(f"ours must be a (name, value) pair with a string name, got {ours!r}")
    value = _check_finite(value, f"the value of {name!r} (ours)")
    decimals = _check_style(unit, decimals)
    if not isinstance(others, dict):
        raise TypeError(f"others must be a dict of method name -> value, got {type(others).__name__} {others!r:.80}")
    rest = {k: v for k, v in others.items() if k != name}
    best_name, best = strongest(rest, higher_is_better)
    m = re.match(r"(\s*\S*)(?:\s+(.*))?$", unit, re.S)
    symbol, quantity = m.group(1), (m.group(2) or "").strip()
    head = f"{name}: {number(value, symbol, decimals)}" + (f" {quantity}" if quantity else "")
    text = f"{head}; strongest other method: {best_name}, {number(best, symbol, decimals)}"
    if margin is None:
        return text
    margin = _check_finite(margin, "margin")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    gap = value - best if higher_is_better else best - value
    if abs(gap) <= margin:
        return text + f" (within {number(margin, symbol, decimals)} of each other: no winner)"
    return text + f" ({name if gap > 0 else best_name} ahead)"


# --- showing it in a notebook -------------------------------------------------------------------------------------
def markdown(*parts: str, sep: str = " "):
    """Computed prose as a Markdown display object: a cell ending in `prose.markdown(...)` renders it as text."""
    from IPython.display import Markdown

    for p in parts:
        if not isinstance(p, str):
            raise TypeError(f"markdown() takes strings (render numbers with prose.number/verdict first), got {p!r}")
    return Markdown(sep.join(parts))


# --- typed numbers in a notebook's markdown -----------------------------------------------------------------------
class TypedNumber(NamedTuple):
    """A number typed in a markdown cell: the notebook's file name, the cell index, the number, the words around it."""

    notebook: str
    cell: int
    token: str
    context: str


_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")
_SKIP = [re.compile(p, re.S) for p in (
    r"```.*?```", r"~~~.*?~~~",            # fenced code
    r"`[^`\n]*`",                           # inline code: identifiers, code, parameters
    r"\$\$.*?\$\$", r"\$[^$\n]+\$",         # math
    r"<!--.*?-->", r"<[^>\n]+>",            # HTML comments and tags
    r"\]\([^)\n]*\)", r"https?://\S+",      # link targets and URLs
    r"(?m)^\s*#{1,6}\s+(?:Steps?\s+)?\d+[a-z]?\b",   # a heading's section number: "## 3b ·", "## Step 4:"
    r"(?m)^\s*\d+\.\s",                     # ordered-list markers
)]
# a sentence that cites a paper: its numbers are the paper's figures (say which paper; CONTRIBUTING.md)
CITATION = re.compile(r"\bpapers?\b|\bpaper's\b|\bauthors\b|\barXiv\b|\bet al\.", re.I)
# a reference into a paper or to another notebook: "Table 2", "Fig. 3", "Eq. (4)", "Theorem 4.1", "notebook 07"
_REFERENCE = re.compile(r"(?:\bTables?|\bTab\.|\bFig(?:ure)?s?\.?|\bEq(?:uation)?s?\.?|\bSec(?:tion)?s?\.?|§|"
                        r"\bAppendix|\bAlgorithm|\bTheorem|\bLemma|\barXiv:?|\bnotebooks?)\s*\(?$", re.I)
_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n\s*\n|\n(?=\s*(?:[-*+|#>]|\d+\.\s))")


def _blank(text: str) -> str:
    """`text` with code, math, markup and section numbers replaced by spaces (offsets kept)."""
    for pat in _SKIP:
        text = pat.sub(lambda m: " " * len(m.group()), text)
    return text


def _is_name_part(text: str, start: int) -> bool:
    """True when the digits at `start` belong to a name: SmolLM2, L6-v2, GPT-4, DW-3, A100."""
    run = re.search(r"[\w\-]*$", text[:start]).group()
    return bool(re.search(r"[A-Za-z_]", run))


def parameter_values(nb: dict) -> set[float]:
    """The numeric literals of the notebook's parameters cell(s): the code cells that call `quick()`."""
    out: set[float] = set()
    for c in nb.get("cells", []):
        src = "".join(c.get("source", ""))
        if c.get("cell_type") != "code" or "quick()" not in src:
            continue
        try:
            toks = [t.string for t in tokenize.generate_tokens(io.StringIO(src).readline) if t.type == tokenize.NUMBER]
        except (tokenize.TokenError, IndentationError, SyntaxError):
            toks = re.findall(r"(?<![\w.])\d[\d_]*(?:\.\d+)?", src)
        for t in toks:
            try:
                out.add(float(t.replace("_", "")))
            except ValueError:
                continue
    return out


def markdown_numbers(path) -> list[TypedNumber]:
    """Every number typed in a notebook's markdown cells that is neither a paper's figure nor a parameter.

    Left out: code spans, math, links, markup, section numbers, digits inside names (SmolLM2, GPT-4, A100),
    references into a paper (Table 2, Fig. 3), every number of a sentence that cites a paper (it mentions
    "paper", "authors", "arXiv" or "et al."), and numbers equal to a literal of the parameters cell.
    """
    path = Path(path)
    nb = json.loads(path.read_text())
    params = parameter_values(nb)
    found = []
    for i, c in enumerate(nb.get("cells", [])):
        if c.get("cell_type") != "markdown":
            continue
        raw = "".join(c.get("source", ""))
        text = _blank(raw)
        pos = 0
        for sentence in _SENTENCE.split(text):
            start = text.index(sentence, pos) if sentence else pos
            pos = start + len(sentence)
            if not sentence.strip() or CITATION.search(sentence):
                continue
            for m in _NUMBER.finditer(sentence):
                at = start + m.start()
                if _is_name_part(text, at) or _REFERENCE.search(text[:at]):
                    continue
                if float(m.group().replace(",", "")) in params:
                    continue
                ctx = re.sub(r"\s+", " ", raw[max(0, at - 40): at + len(m.group()) + 40]).strip()
                found.append(TypedNumber(path.name, i, m.group(), ctx))
    return found


ALLOW_LIST_HEADER = """\
# Numbers typed in the notebooks' markdown that tests/test_prose.py accepts (see CONTRIBUTING.md, "Computed prose").
#
# One line per occurrence:  <notebook> | <number as typed> | <why it may stay typed / where it stands>
# The test compares, per notebook, the multiset of numbers: a number typed once more, or a new one, fails; a line
# here whose number is gone from its notebook draws a warning (delete the line: the list only shrinks). Cell indices
# and the words after the second '|' are for people; moving prose around does not break the test.
#
# A measured number belongs in a code cell's output (nblib.prose), not here. A paper's figure passes without a line
# when its sentence names the paper ("the paper reports ..."); a parameter passes when it is a literal of the
# parameters cell. Regenerate after removing numbers:  python -m nblib.prose > tests/prose_allowlist.txt
# (then restore the reasons of lines you kept; a line added by hand says why the number is not a measurement).
#
# Lines below marked "legacy" were typed before issue 22; the technique issues replace them with computed prose.
"""


def allow_list(notebooks) -> str:
    """The allow-list text for these notebooks: the header, then one "legacy" line per typed number."""
    lines = [ALLOW_LIST_HEADER]
    for nb in sorted(Path(p) for p in notebooks):
        for t in markdown_numbers(nb):
            lines.append(f"{t.notebook} | {t.token} | legacy, cell {t.cell}: {t.context.replace('|', '/')}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":   # python -m nblib.prose [notebooks...] > tests/prose_allowlist.txt
    import sys

    root = Path(__file__).resolve().parents[1]
    args = sys.argv[1:] or sorted((root / "notebooks").glob("*.ipynb"))
    sys.stdout.write(allow_list(args))
