"""A real browser: JupyterLab in headless Chromium runs every notebook that has a slider panel; a slider moves,
the readout and the plot change.

The notebooks are listed in `PANELS`, one line each: the notebook file, the CSS hook of the slider to move
(`<notebook>-<slider>`, see `nblib.panel.SliderPanel`), the key presses that move it on its noUi handle (an
empty tuple: click it instead, for a checkbox), the readout's CSS hook (`<notebook>-readout`; the plot is
the `<notebook>-plot` image next to it), and optionally a text the readout shows before and after the move.
A new notebook with a panel adds one line; `-k 07` runs one notebook's line.

For each line the test opens the notebook in a private workspace, runs all cells, checks no cell raised,
moves the slider, and asserts the readout text and the plot image changed and that no request left
127.0.0.1. Debian's /usr/bin/chromium is driven by the `playwright` pip package (never
`playwright install`). JupyterLab runs on 127.0.0.1 with a random token, its own config/data/runtime
folders, over a temp copy of notebooks/ (outputs stripped), and is stopped by its PID. Every request the
page makes off 127.0.0.1 is blocked and fails the test. Screenshots land in $SHOT_DIR (default: a
temporary folder); $NOTEBOOKS_DIR serves another notebooks folder.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import NamedTuple

import pytest


class Panel(NamedTuple):
    """One notebook's line: which slider to move, how, and where its readout is."""

    notebook: str                 # file name in notebooks/
    slider: str                   # CSS hook of the slider (or checkbox) to move
    keys: tuple[str, ...]         # key presses on its noUi handle; () = click it (a checkbox)
    readout: str                  # CSS hook of the readout; the plot is the same prefix + "-plot"
    before: str = ""              # text in the readout before the move ("": not checked)
    after: str = ""               # text in the readout after the move ("": only "it changed")


PANELS = [
    Panel("03_lwe.ipynb", "nb03-batch", ("ArrowRight",), "nb03-readout", "B 4 ·", "B 8 ·"),  # B: 4 -> 8 (the shipped runs)
    Panel("03_lwe.ipynb", "nb03-r-r", ("ArrowRight",), "nb03-r-readout", "r = 0.3,", "r = 0.4,"),  # the r panel
    Panel("00_measuring_inference_cost.ipynb", "nb00-batch", ("ArrowRight",) * 2, "nb00-readout", "batch 1 ·",
          "batch 4 ·"),           # a SelectionSlider over the measured batch sizes: 1 -> 2 -> 4
    Panel("01_koala.ipynb", "nb01-depth-dw-3", ("ArrowLeft",), "nb01-readout", "DW-3 1R x T6", "DW-3 1R x T5"),
    Panel("02_d2dmoe.ipynb", "nb02-tau", ("ArrowRight",), "nb02-readout", "tau 0.3 ·", "tau 0.4 ·"),
    Panel("04_steer.ipynb", "nb04-threshold", ("ArrowLeft",), "nb04-readout"),  # one notch down the grid
    Panel("05_hierrouter.ipynb", "nb05-lam", ("ArrowRight",), "nb05-readout", "λ 0.05 ·", "λ 0.1 ·"),  # committed λs: 0, 0.01, 0.05, 0.1, 0.15, 0.5
    Panel("06_c3po.ipynb", "nb06-alpha", ("ArrowRight",), "nb06-readout", "alpha 0.10 ·", "alpha 0.11 ·"),
    Panel("07_cast.ipynb", "nb07-depth", ("ArrowRight",), "nb07-readout", "depth 2 ·", "depth 3 ·"),
]


pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = Path(os.environ.get("NOTEBOOKS_DIR") or ROOT / "notebooks")   # another folder: NOTEBOOKS_DIR=...
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--no-proxy-server"]
UI_TIMEOUT_MS = 120_000
RUN_ALL_TIMEOUT_MS = 900_000   # a notebook measures real models: minutes on 2 loaded cores

if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM}: run `make browser-deps` (apt-get install chromium)",
                allow_module_level=True)
playwright = pytest.importorskip("playwright.sync_api")
expect = playwright.expect

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never route 127.0.0.1 via a proxy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(base: str, token: str, path: str, method: str = "GET") -> int:
    req = urllib.request.Request(base + path, method=method, headers={"Authorization": f"token {token}"})
    try:
        with _OPENER.open(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:  # not listening yet
        return 0


def _strip(src: Path, dst: Path) -> None:
    """Copy a notebook without its outputs, execution counts and saved widget state."""
    nb = json.loads(src.read_text())
    for c in nb["cells"]:
        if c["cell_type"] == "code":
            c["outputs"], c["execution_count"] = [], None
    nb["metadata"].pop("widgets", None)
    dst.write_text(json.dumps(nb))


@pytest.fixture(scope="module")
def lab(stop_process):
    """JupyterLab on 127.0.0.1 over a temp root holding a clean copy of every notebook in notebooks/."""
    tmp = Path(tempfile.mkdtemp(prefix="lab-"))
    root = tmp / "notebooks"
    root.mkdir()
    for src in sorted(NOTEBOOKS.glob("*.ipynb")):
        _strip(src, root / src.name)
    settings = tmp / "config/lab/user-settings/@jupyterlab/apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp / "config"), "JUPYTER_DATA_DIR": str(tmp / "data"),
           "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"), "IPYTHONDIR": str(tmp / "ipython"),
           "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "NBLIB_QUICK": os.environ.get("NBLIB_QUICK", "1")}
    # the kernel must find the same nblib/torch as this test: use this interpreter's environment
    bindir = Path(sys.executable).parent
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    log = open(tmp / "lab.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.extension_manager=readonly", "--expose-app-in-browser"],
        env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while _api(base, token, "/api/status") != 200:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"JupyterLab did not start; log:\n{(tmp / 'lab.log').read_text()[-3000:]}")
            time.sleep(0.3)
        yield {"base": base, "token": token, "root": root}
    finally:
        _api(base, token, "/api/shutdown", method="POST")   # shuts the kernels down cleanly
        stop_process(proc)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def foreign() -> list[str]:
    """Every URL off 127.0.0.1 the page tried (and was refused)."""
    return []


@pytest.fixture(scope="module")
def page(foreign):
    """A headless Chromium page whose requests off 127.0.0.1 are blocked and recorded in `foreign`."""
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROME_ARGS)
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        ctx.set_default_timeout(UI_TIMEOUT_MS)

        def off_machine(route):
            foreign.append(route.request.url)
            route.abort("blockedbyclient")

        ctx.route(re.compile(r"^https?://(?!(127\.0\.0\.1|localhost)[:/])"), off_machine)
        pg = ctx.new_page()
        yield pg
        ctx.close()
        browser.close()
        assert not foreign, f"the page tried to leave 127.0.0.1: {foreign}"


JS_PANEL = """path => { for (const w of window.jupyterapp.shell.widgets('main'))
                          if (w.context && w.context.path === path) return w; return null; }"""
JS_KERNEL_IDLE = f"""path => {{ const w = ({JS_PANEL})(path);
  const k = w && w.sessionContext.session && w.sessionContext.session.kernel;
  const ind = w && w.node.querySelector('.jp-Notebook-ExecutionIndicator');
  return !!k && k.connectionStatus === 'connected' && k.status === 'idle' && (!ind || ind.dataset.status === 'idle'); }}"""
JS_ALL_EXECUTED = f"""path => {{ const w = ({JS_PANEL})(path); if (!w) return false;
  const cells = w.content.model.cells;
  for (let i = 0; i < cells.length; i++) {{ const c = cells.get(i);
    if (c.type === 'code' && c.sharedModel.getSource().trim() && c.executionCount == null) return false; }}
  return true; }}"""
JS_ERRORS = f"""path => {{ const w = ({JS_PANEL})(path); const errs = []; const cells = w.content.model.cells;
  for (let i = 0; i < cells.length; i++) {{ const c = cells.get(i); if (c.type !== 'code') continue;
    for (const o of c.outputs.toJSON()) if (o.output_type === 'error') errs.push(`cell ${{i}}: ${{o.ename}}: ${{o.evalue}}`); }}
  return errs; }}"""
JS_IMG_SRC = """hook => { const i = document.querySelector(`.${hook} img, img.${hook}`);
                           return i && i.getAttribute('src'); }"""


def wait_stable(page, js: str, arg=None, differs_from=None, quiet_s: float = 1.0, timeout_s: float = 60):
    """Poll js(arg) until its value differs from `differs_from`, then stays put for quiet_s."""
    deadline = time.monotonic() + timeout_s
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        cur = page.evaluate(js, arg)
        if cur != last:
            last, since = cur, time.monotonic()
        elif cur is not None and cur != differs_from and time.monotonic() - since >= quiet_s:
            return cur
        page.wait_for_timeout(100)
    raise TimeoutError(f"{js!r} did not settle on a new value in {timeout_s}s")


def _shutdown_kernels(lab, path: str) -> None:
    """Stop the kernel of `path` (the next notebook gets the cores and the memory)."""
    req = urllib.request.Request(lab["base"] + "/api/sessions", headers={"Authorization": f"token {lab['token']}"})
    try:
        with _OPENER.open(req, timeout=10) as r:
            sessions = json.loads(r.read())
    except OSError:   # the server is gone: nothing to stop (and the test's own error is the one to see)
        return
    for sess in sessions:
        if sess.get("path", "").endswith(path):
            _api(lab["base"], lab["token"], f"/api/sessions/{sess['id']}", method="DELETE")


@pytest.mark.parametrize("panel", PANELS, ids=[p.notebook.split("_")[0] + ("-" + p.slider if [q.notebook for q in PANELS].count(p.notebook) > 1 else "") for p in PANELS])
def test_lab_runs_a_notebook_and_a_slider_redraws(lab, page, foreign, panel: Panel):
    shots = Path(os.environ.get("SHOT_DIR") or tempfile.mkdtemp(prefix="shots-"))
    shots.mkdir(parents=True, exist_ok=True)
    nb, stem = panel.notebook, panel.notebook.split("_")[0]
    assert (lab["root"] / nb).exists(), f"{nb} is not in notebooks/: fix its line in PANELS"
    plot = panel.readout.rsplit("-", 1)[0] + "-plot"
    ws = "t" + secrets.token_hex(4)   # a private workspace: no tabs restored from elsewhere
    page.goto(f"{lab['base']}/lab/workspaces/{ws}/tree/{nb}?token={lab['token']}&reset")
    page.wait_for_function("() => !!window.jupyterapp")
    page.wait_for_function(JS_KERNEL_IDLE, arg=nb)
    try:
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        page.wait_for_function(JS_ALL_EXECUTED, arg=nb, timeout=RUN_ALL_TIMEOUT_MS)
        page.wait_for_function(JS_KERNEL_IDLE, arg=nb, timeout=RUN_ALL_TIMEOUT_MS)
        assert page.evaluate(JS_ERRORS, nb) == [], "a cell raised"
        expect(page.locator(".jp-OutputArea-output", has_text="Error displaying widget")).to_have_count(0)

        label = page.locator(f".{panel.readout}")
        target = page.locator(f".{panel.slider} .noUi-handle" if panel.keys else f".{panel.slider} input")
        expect(target).to_be_visible()
        expect(label).to_be_visible()
        if panel.before:
            expect(label).to_contain_text(panel.before)
        before_label = label.inner_text()
        before_src = wait_stable(page, JS_IMG_SRC, plot)
        label.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / f"nb{stem}_before.png"))

        if panel.keys:
            target.focus()
            for key in panel.keys:
                page.keyboard.press(key)
        else:
            target.click()
        if panel.after:
            expect(label).to_contain_text(panel.after)
        expect(label).not_to_have_text(before_label)
        page.wait_for_function(JS_KERNEL_IDLE, arg=nb)
        after_src = wait_stable(page, JS_IMG_SRC, plot, differs_from=before_src)
        assert label.inner_text() != before_label
        assert after_src != before_src
        assert page.evaluate(JS_ERRORS, nb) == [], "a cell raised after the move"
        page.screenshot(path=str(shots / f"nb{stem}_after.png"))
        assert not foreign, f"the page tried to leave 127.0.0.1: {foreign}"
    finally:
        _shutdown_kernels(lab, nb)
