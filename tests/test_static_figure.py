"""A slider panel read without a kernel still shows its figure: nbconvert's HTML and the committed notebooks."""
from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"

# Notebooks committed before the panel base gave its figure as image/png (issue 22). Each leaves this set when it is
# re-executed and saved without widget state; the test fails on a notebook listed here that already complies, so
# the set only shrinks.
PENDING: set[str] = set()

PANEL_CELL = '''
import ipywidgets as W
from nblib.panel import SliderPanel

class Tiny(SliderPanel):
    prefix, figsize, dpi = "nbzz", (3, 2), 40
    def build(self, fig):
        self.ax = fig.subplots()
        (self.line,) = self.ax.plot([0, 1], [0, 0])
        self.ax.set_ylim(0, 10)
    def compute(self, a):
        return {"a": a}
    def draw(self, st):
        self.line.set_ydata([0, st["a"]])
        return f"<b>a</b> = {st['a']}"

panel = Tiny({"a": W.IntSlider(value=3, min=0, max=10)})
panel
'''


def panel_outputs(nb: dict) -> list[dict]:
    """Every display output of a code cell that holds a widget view."""
    return [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
            if WIDGET_VIEW in o.get("data", {})]


def shows_a_figure(nb: dict, out: dict) -> bool:
    """True when a renderer without a kernel shows a figure for this output: it carries a PNG, and nbconvert (which
    prefers a widget view whose model is in the saved widget state) has no saved state to prefer."""
    state = (nb.get("metadata", {}).get("widgets") or {}).get(WIDGET_STATE, {}).get("state", {})
    png = out["data"].get("image/png")
    return bool(png) and base64.b64decode(png)[:8] == b"\x89PNG\r\n\x1a\n" and \
        out["data"][WIDGET_VIEW]["model_id"] not in state


def test_the_check_tells_a_figure_from_a_bare_widget_view():
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 8).decode()
    view = {WIDGET_VIEW: {"model_id": "m1"}, "text/plain": "VBox(...)"}
    state = {"widgets": {WIDGET_STATE: {"state": {"m1": {}}}}}
    assert not shows_a_figure({}, {"data": view})
    assert shows_a_figure({}, {"data": {**view, "image/png": png}})
    assert not shows_a_figure({"metadata": state}, {"data": {**view, "image/png": png}})


def test_nbconvert_html_shows_the_panel_figure(tmp_path):
    """A panel's output as IPython publishes it, saved without widget state, through a plain `jupyter nbconvert --to
    html`: the page shows the panel's figure (no kernel is started: the display formatter is IPython's own)."""
    nbformat = pytest.importorskip("nbformat")
    from IPython.core.formatters import DisplayFormatter

    ns: dict = {}
    exec(PANEL_CELL.replace("\npanel\n", "\n"), ns)       # noqa: S102 - the cell's code, without its display line
    data, md = DisplayFormatter().format(ns["panel"])
    cell = nbformat.v4.new_code_cell(PANEL_CELL, execution_count=1,
                                     outputs=[nbformat.v4.new_output("execute_result", data=data, metadata=md,
                                                                              execution_count=1)])
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.validate(nb)
    (out,) = panel_outputs(nb)
    assert shows_a_figure(nb, out) and out["data"]["text/plain"] == "Tiny: a = 3"
    src = tmp_path / "tiny.ipynb"
    nbformat.write(nb, src)
    subprocess.run([sys.executable, "-m", "nbconvert", "--to", "html", str(src)], check=True, capture_output=True,
                   timeout=120)
    html = (tmp_path / "tiny.html").read_text()
    imgs = re.findall(r'<img[^>]*\ssrc="data:image/png;base64,([^"]+)"', html)
    assert imgs == [out["data"]["image/png"].strip()]      # the panel's figure, once
    assert "VBox(" not in html and "jupyter-widgets/html-manager" not in html


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb")))
def test_committed_notebooks_show_a_figure_for_every_panel(name):
    nb = json.loads((ROOT / "notebooks" / name).read_text())
    outs = panel_outputs(nb)
    complies = all(shows_a_figure(nb, o) for o in outs)
    if name in PENDING:
        assert outs and not complies, f"{name} now shows a figure for every panel: remove it from PENDING"
    else:
        assert complies, (f"{name}: a panel output has no image/png, or its widget view has saved widget state that "
                          "nbconvert prefers; re-run with the current nblib.panel and save without widget state")
