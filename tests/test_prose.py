"""Computed prose (nblib.prose): numbers and verdicts rendered from results, and no new typed numbers in notebooks."""
from __future__ import annotations

import json
import warnings
from collections import Counter
from pathlib import Path

import pytest

from nblib import prose

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
ALLOW_LIST = Path(__file__).with_name("prose_allowlist.txt")
REGENERATE = "python -m nblib.prose > tests/prose_allowlist.txt"


def test_numbers_are_formatted_for_prose():
    assert prose.number(2634.4, " ms", 0) == "2,634 ms"
    assert prose.number(1234.5678) == "1,234.57"
    assert prose.percent(0.532) == "53 %" and prose.percent(0.7049, 1) == "70.5 %"
    assert prose.times(2.4913) == "2.49x"
    with pytest.raises(ValueError, match="no measurement"):
        prose.number(float("nan"))
    with pytest.raises(TypeError, match="must be a number"):
        prose.times("fast")


def test_verdict_names_the_strongest_other_method():
    others = {"chain": 2.15, "EAGLE-2 tree": 1.37, "prompt lookup": 1.07, "assisted": float("nan")}
    assert prose.verdict(("CAST", 2.49), others, unit="x generate") == \
        "CAST: 2.49x generate; strongest other method: chain, 2.15x"
    # ours is left out of `others`; lower is better for a cost
    assert prose.verdict(("C3PO", 410.0), {"C3PO": 1.0, "tiny": 90.0, "large": 1280.0}, unit=" MFLOPs",
                         higher_is_better=False, decimals=0) == "C3PO: 410 MFLOPs; strongest other method: tiny, 90 MFLOPs"
    assert prose.strongest({"a": 1, "b": 3, "c": None}) == ("b", 3.0)
    with pytest.raises(ValueError, match="nothing to compare"):
        prose.verdict(("x", 1.0), {"y": float("nan")})
    with pytest.raises(TypeError, match="pair"):
        prose.verdict("CAST", others)


def test_verdict_with_a_margin_never_calls_a_gap_inside_it_a_win():
    assert prose.verdict(("CAST", 2.49), {"chain": 2.15}, unit="x", margin=0.1).endswith("(CAST ahead)")
    assert prose.verdict(("CAST", 2.20), {"chain": 2.15}, unit="x", margin=0.1).endswith(
        "(within 0.10x of each other: no winner)")
    assert prose.verdict(("dyn-k", 0.53), {"top-k": 0.70}, margin=0.01).endswith("(top-k ahead)")
    assert prose.verdict(("ours", 5.0), {"dense": 9.0}, higher_is_better=False, margin=1).endswith("(ours ahead)")


def test_markdown_displays_computed_prose():
    from IPython.core.formatters import DisplayFormatter

    md = prose.markdown("**Verdict.**", prose.verdict(("CAST", 2.49), {"chain": 2.15}, unit="x"))
    data, _ = DisplayFormatter().format(md)
    assert data["text/markdown"] == "**Verdict.** CAST: 2.49x; strongest other method: chain, 2.15x"
    with pytest.raises(TypeError, match="takes strings"):
        prose.markdown("speed-up", 2.49)


def _notebook(tmp_path, *markdown: str, params: str = "QUICK = nblib.quick()\nN = 150 if QUICK else 400\n") -> Path:
    cells = [{"cell_type": "code", "source": params, "metadata": {}, "outputs": [], "execution_count": None}]
    cells += [{"cell_type": "markdown", "source": m, "metadata": {}} for m in markdown]
    path = tmp_path / "99_toy.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_the_scan_finds_typed_measurements_and_skips_citations_parameters_and_names(tmp_path):
    path = _notebook(
        tmp_path,
        "## 3b · Results\n\nCAST runs at 2.49x `generate` (load 0.88); the chain at 2.15x.",
        "The paper reports 1.16 B and 782 M parameters (Table 2). Interactive use traces 400 problems, CI 150.",
        "SmolLM2-135M-Instruct and MiniLM-L6-v2 on GPT-4's answers; see notebook 07 and $T = 12$.",
        "1. first item\n2. second: `N_PROBLEMS = 300`, [link](https://x.org/a/2024)")
    found = prose.markdown_numbers(path)
    assert [(t.cell, t.token) for t in found] == [(1, "2.49"), (1, "0.88"), (1, "2.15")]
    assert all(t.notebook == "99_toy.ipynb" for t in found) and "2.49x" in found[0].context


def _allowed() -> Counter:
    allowed = Counter()
    for line in ALLOW_LIST.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        notebook, token, reason = (part.strip() for part in line.split("|", 2))
        assert reason, f"{ALLOW_LIST.name}: a line without a reason: {line!r}"
        allowed[(notebook, token)] += 1
    return allowed


def test_the_allow_list_names_existing_notebooks():
    names = {p.name for p in NOTEBOOKS}
    assert {nb for nb, _ in _allowed()} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_new_typed_numbers_in_the_notebooks_prose(path):
    """Every number typed in markdown is a paper's figure, a parameter, or on the explicit allow-list."""
    found = prose.markdown_numbers(path)
    typed = Counter((t.notebook, t.token) for t in found)
    allowed = Counter({k: v for k, v in _allowed().items() if k[0] == path.name})
    new = typed - allowed
    if new:
        where = [f"cell {t.cell}: {t.token!r} in '...{t.context}...'" for t in found if (t.notebook, t.token) in new]
        pytest.fail(f"{path.name}: typed numbers in the prose that are not on {ALLOW_LIST.name}:\n  "
                     + "\n  ".join(where) + "\nRender measured numbers with nblib.prose in a code cell (see "
                     "CONTRIBUTING.md, 'Computed prose'); cite a paper's figure in a sentence that names the paper.")
    gone = allowed - typed
    if gone:   # a warning, not a failure: notebooks are rewritten in parallel; the list should still shrink
        warnings.warn(f"{path.name}: allow-listed numbers no longer typed there: {sorted(gone.elements())}; delete "
                      f"their lines from {ALLOW_LIST.name} (or regenerate: {REGENERATE})", stacklevel=1)
