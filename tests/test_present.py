"""Presenter mode: `make present` serves the notebooks through Voila on 127.0.0.1, code hidden, panels live."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SECRET_SOURCE = "class Tiny(SliderPanel)"
PANEL_NOTEBOOK = {
    "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": "# A panel on stage"},
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": f"""\
import ipywidgets as W
from nblib.panel import SliderPanel

{SECRET_SOURCE}:
    prefix, figsize, dpi = "nbzz", (3, 2), 40
    def build(self, fig):
        (self.line,) = fig.subplots().plot([0, 1], [0, 0])
    def compute(self, a):
        return {{"a": a}}
    def draw(self, st):
        self.line.set_ydata([0, st["a"]])
        return f"a = {{st['a']}}"

Tiny({{"a": W.IntSlider(value=3, min=0, max=10)}})"""},
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "nbformat": 4, "nbformat_minor": 5,
}
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never route 127.0.0.1 via a proxy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with _OPENER.open(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except (urllib.error.URLError, ConnectionError, TimeoutError, socket.timeout):
        return 0, ""


@pytest.fixture(scope="module")
def present(tmp_path_factory):
    """`make present` over a folder holding one small panel notebook: yields (base URL, log path); stopped after."""
    root = tmp_path_factory.mktemp("present")
    (root / "notebooks").mkdir()
    (root / "notebooks" / "panel.ipynb").write_text(json.dumps(PANEL_NOTEBOOK))
    port, venv = _free_port(), Path(sys.prefix)
    log = root / "voila.log"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(root / "runtime"), "JUPYTER_DATA_DIR": str(root / "data"),
           "JUPYTER_CONFIG_DIR": str(root / "config"), "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    # -o: never (re)install the environment from a test; VENV: the interpreter running this test
    cmd = ["make", "--no-print-directory", "-o", f"{venv}/.installed", "present", f"VENV={venv}",
           f"PRESENT_DIR={root / 'notebooks'}", f"PRESENT_PORT={port}"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while _get(base + "/")[0] != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"`make present` did not serve {base}; log:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield base, log
    finally:
        for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):   # make, voila and its kernels: one group
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait_s)
                break
            except subprocess.TimeoutExpired:
                continue


@pytest.mark.slow
def test_make_present_serves_an_index_and_each_notebook_without_its_code(present):
    base, log = present
    assert f"http://127.0.0.1:{base.rsplit(':', 1)[1]}/" in log.read_text()   # bound to 127.0.0.1, as told
    status, listing = _get(base + "/voila/api/contents")                   # what the index page lists
    assert status == 200 and [c["name"] for c in json.loads(listing)["content"]] == ["panel.ipynb"]
    status, page = _get(base + "/voila/render/panel.ipynb", timeout=300)   # executes the notebook
    assert status == 200, log.read_text()[-3000:]
    assert "application/vnd.jupyter.widget-view+json" in page and '"image/png"' in page   # the panel, live and static
    assert SECRET_SOURCE not in page and "from nblib.panel import" not in page           # code hidden
    assert "Traceback" not in page and "A panel on stage" in page


@pytest.mark.slow
@pytest.mark.browser
def test_present_page_moves_a_slider_in_a_real_browser(present):
    """Headless Chromium opens the notebook's page under `make present`, presses ArrowRight on the slider: the
    readout and the figure change, and the page asks nothing of any host but 127.0.0.1."""
    import re

    sync_api = pytest.importorskip("playwright.sync_api")
    base, log = present
    foreign: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"), headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                                           "--disable-background-networking", "--disable-component-update",
                                           "--disable-sync"])
        try:
            ctx = browser.new_context(viewport={"width": 1200, "height": 900})
            ctx.set_default_timeout(300_000)        # the page runs the notebook before it shows the panel

            def off_machine(route):
                foreign.append(route.request.url)
                route.abort("blockedbyclient")

            ctx.route(re.compile(r"^https?://(?!(127\.0\.0\.1|localhost)[:/])"), off_machine)
            page = ctx.new_page()
            page.goto(base + "/voila/render/panel.ipynb")
            label, handle = page.locator(".nbzz-readout"), page.locator(".nbzz-a .noUi-handle")
            sync_api.expect(label).to_have_text("a = 3")
            src = "() => { const i = document.querySelector('.nbzz-plot img, img.nbzz-plot'); return i && i.src; }"
            before = page.evaluate(src)
            assert before and before.startswith(("blob:", "data:image/png"))
            assert SECRET_SOURCE not in page.content()
            handle.focus()
            page.keyboard.press("ArrowRight")
            sync_api.expect(label).to_have_text("a = 4")
            page.wait_for_function(f"() => ({src})() !== {before!r}")
        finally:
            browser.close()
    assert not foreign, f"the presenter page tried to leave 127.0.0.1: {foreign}"
