"""README's first-open table is read from the committed notebooks' own cell timings, never typed."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("open_times", ROOT / "scripts" / "open_times.py")
open_times = importlib.util.module_from_spec(spec)
spec.loader.exec_module(open_times)


def test_readme_table_matches_the_notebooks():
    text = (ROOT / "README.md").read_text()
    a = text.index(open_times.START) + len(open_times.START)
    assert text[a:text.index(open_times.END)].strip() == open_times.table().strip(), \
        "README's first-open table is stale: run `python scripts/open_times.py --readme`"


def test_run_time_sums_the_cells(tmp_path):
    cell = lambda a, b: {"cell_type": "code", "source": "", "outputs": [], "execution_count": 1,
                         "metadata": {"execution": {"iopub.execute_input": a, "shell.execute_reply": b}}}
    nb = {"cells": [cell("2026-12-07T01:00:00.000Z", "2026-12-07T01:00:10.000Z"),
                    {"cell_type": "markdown", "source": "x", "metadata": {}},
                    cell("2026-12-07T01:00:10.000Z", "2026-12-07T01:06:00.000Z")],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    p = tmp_path / "x.ipynb"
    p.write_text(json.dumps(nb))
    r = open_times.run_time(p)
    assert r["seconds"] == 360 and r["slowest_cell"] == 2 and r["slowest_s"] == 350 and r["date"] == "2026-12-07"
    p.write_text(json.dumps({**nb, "cells": [nb["cells"][1]]}))
    assert open_times.run_time(p)["seconds"] is None
