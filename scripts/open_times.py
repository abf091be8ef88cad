"""How long each committed notebook took to run top to bottom, read from its own cell timings.

nbconvert / nbclient record when each cell started and finished (cell metadata "execution"); the sum of
the cells' times is what a first open in presenter mode costs on a machine like the one that made the
committed outputs (two CPU cores; the load at the time is not recorded in the notebook: see the commit
message that re-executed it). `--readme` rewrites the table between the markers in README.md; the test
suite checks that the table there matches the notebooks (tests/test_open_times.py).

Usage: python scripts/open_times.py [--readme]
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- open-times:start -->", "<!-- open-times:end -->"
BUDGET_S = 300  # what a first open should stay within at interactive defaults


def _t(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def run_time(path: Path) -> dict:
    """Seconds a committed notebook's cells took (sum, and the slowest cell), and the date it was executed."""
    nb = json.loads(Path(path).read_text())
    spans = []
    for i, c in enumerate(nb["cells"]):
        e = c.get("metadata", {}).get("execution", {})
        a = e.get("iopub.execute_input") or e.get("shell.execute_reply.started")
        b = e.get("shell.execute_reply")
        if a and b:
            spans.append(((_t(b) - _t(a)).total_seconds(), i, _t(a)))
    if not spans:
        return {"notebook": Path(path).name, "seconds": None, "slowest_cell": None, "slowest_s": None, "date": None}
    slow = max(spans)
    return {"notebook": Path(path).name, "seconds": sum(s for s, _, _ in spans), "slowest_cell": slow[1],
            "slowest_s": slow[0], "date": min(t for _, _, t in spans).strftime("%Y-%m-%d")}


def table(folder: Path = ROOT / "notebooks") -> str:
    """The README table: one row per notebook, run time in minutes, its slowest cell, the date it ran."""
    rows = ["| notebook | run time of the committed outputs | slowest cell | executed | within 5 min |",
            "|---|---|---|---|---|"]
    for p in sorted(Path(folder).glob("*.ipynb")):
        r = run_time(p)
        if r["seconds"] is None:
            rows.append(f"| `{r['notebook']}` | not recorded | | | |")
            continue
        ok = "yes" if r["seconds"] <= BUDGET_S else "**no**"
        rows.append(f"| `{r['notebook']}` | {r['seconds'] / 60:.1f} min | cell {r['slowest_cell']}: "
                    f"{r['slowest_s']:.0f} s | {r['date']} | {ok} |")
    return "\n".join(rows)


def write_readme(readme: Path = ROOT / "README.md") -> bool:
    """Replace the table between the markers; True if the README changed."""
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{readme} has no {START} ... {END} block to fill")
    a, b = text.index(START) + len(START), text.index(END)
    new = text[:a] + "\n" + table() + "\n" + text[b:]
    if new != text:
        readme.write_text(new)
    return new != text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readme", action="store_true", help="rewrite the table in README.md")
    a = ap.parse_args(argv)
    if a.readme:
        print("README.md updated" if write_readme() else "README.md already up to date")
    else:
        print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
