"""A real browser: JupyterLab in headless Chromium runs notebook 00, a slider moves, label and plot change.

Debian's /usr/bin/chromium is driven by the `playwright` pip package (never
`playwright install`). JupyterLab runs on 127.0.0.1 with a random token, its
own config/data/runtime folders, and is stopped by its PID. Every request the
page makes off 127.0.0.1 is blocked and fails the test.
Screenshots land in $SHOT_DIR (default: a temporary folder).
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

import pytest


pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "00_measuring_inference_cost.ipynb"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--no-proxy-server"]
UI_TIMEOUT_MS = 120_000
RUN_ALL_TIMEOUT_MS = 900_000   # the notebook measures a real model: minutes on 2 loaded cores

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


@pytest.fixture(scope="module")
def lab(stop_process):
    """JupyterLab on 127.0.0.1 over a temp root holding a clean copy of notebook 00."""
    tmp = Path(tempfile.mkdtemp(prefix="lab-"))
    root = tmp / "notebooks"
    root.mkdir()
    nb = json.loads(NOTEBOOK.read_text())
    for c in nb["cells"]:
        if c["cell_type"] == "code":
            c["outputs"], c["execution_count"] = [], None
    nb["metadata"].pop("widgets", None)
    name = f"nb00_{secrets.token_hex(3)}.ipynb"
    (root / name).write_text(json.dumps(nb))
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
        yield {"base": base, "token": token, "nb": name}
    finally:
        _api(base, token, "/api/shutdown", method="POST")   # shuts the kernels down cleanly
        stop_process(proc)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def page():
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROME_ARGS)
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        ctx.set_default_timeout(UI_TIMEOUT_MS)
        foreign: list[str] = []

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
JS_IMG_SRC = "() => { const i = document.querySelector('.cost-plot img, img.cost-plot'); return i && i.getAttribute('src'); }"


def wait_stable(page, js: str, differs_from=None, quiet_s: float = 1.0, timeout_s: float = 60):
    """Poll js() until its value differs from `differs_from`, then stays put for quiet_s."""
    deadline = time.monotonic() + timeout_s
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        cur = page.evaluate(js)
        if cur != last:
            last, since = cur, time.monotonic()
        elif cur is not None and cur != differs_from and time.monotonic() - since >= quiet_s:
            return cur
        page.wait_for_timeout(100)
    raise TimeoutError(f"{js!r} did not settle on a new value in {timeout_s}s")


def test_lab_runs_notebook_00_and_a_slider_redraws(lab, page):
    shots = Path(os.environ.get("SHOT_DIR") or tempfile.mkdtemp(prefix="shots-"))
    shots.mkdir(parents=True, exist_ok=True)
    nb = lab["nb"]
    ws = "t" + secrets.token_hex(4)   # a private workspace: no tabs restored from elsewhere
    page.goto(f"{lab['base']}/lab/workspaces/{ws}/tree/{nb}?token={lab['token']}&reset")
    page.wait_for_function("() => !!window.jupyterapp")
    page.wait_for_function(JS_KERNEL_IDLE, arg=nb)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    page.wait_for_function(JS_ALL_EXECUTED, arg=nb, timeout=RUN_ALL_TIMEOUT_MS)
    page.wait_for_function(JS_KERNEL_IDLE, arg=nb, timeout=RUN_ALL_TIMEOUT_MS)
    assert page.evaluate(JS_ERRORS, nb) == [], "a cell raised"
    expect(page.locator(".jp-OutputArea-output", has_text="Error displaying widget")).to_have_count(0)

    label = page.locator(".cost-label")
    handle = page.locator(".cost-batch .noUi-handle")
    expect(handle).to_be_visible()
    expect(label).to_contain_text("batch 1 ·")
    before_label = label.inner_text()
    before_src = wait_stable(page, JS_IMG_SRC)
    label.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "nb00_before.png"))

    handle.focus()
    for _ in range(2):                     # batch 1 -> 2 -> 4 (a SelectionSlider over the measured sizes)
        page.keyboard.press("ArrowRight")
    expect(label).to_contain_text("batch 4 ·")
    page.wait_for_function(JS_KERNEL_IDLE, arg=nb)
    after_src = wait_stable(page, JS_IMG_SRC, differs_from=before_src)
    assert label.inner_text() != before_label
    assert after_src != before_src
    page.screenshot(path=str(shots / "nb00_after.png"))
