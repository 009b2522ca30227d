"""The quickstart in a real JupyterLab, driven by headless Chromium through Playwright:
run it, press Start, watch the live loss plot gain points, press Stop, check that training
stopped. Leaves test-artifacts/app-mid-training.png."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
POINTS_JS = ("() => { const gd = document.querySelector('.wb-loss-plot .js-plotly-plot');"
             " return gd && gd.data && gd.data[0] && gd.data[0].x ? gd.data[0].x.length : 0; }")
STATUS_JS = "() => (document.querySelector('.wb-status') || {}).textContent || ''"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def lab(tmp_path):
    """JupyterLab on a random localhost port over a copy of notebooks/, the quickstart
    parameterised for the tiny model and a long run (the test stops it)."""
    import papermill.iorw
    import papermill.parameterize as pp

    root = tmp_path / "notebooks"
    shutil.copytree(REPO / "notebooks", root, ignore=shutil.ignore_patterns("runs", ".ipynb_checkpoints"))
    nb_path = root / "00_quickstart.ipynb"
    nb = pp.parameterize_notebook(papermill.iorw.load_notebook_node(str(nb_path)), {
        "model": "tiny-llama", "max_steps": 2000, "eval_steps": 1000, "shift_prompts": 0})
    nbformat.write(nb, nb_path)
    # No "get Jupyter news?" toast over the app in the screenshot.
    settings = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "WORKBENCH_HEADLESS"}
    env.update(JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
               WORKBENCH_RUNS=str(tmp_path / "lab-runs"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         "--allow-root",
         "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={root}",
         "--LabApp.expose_app_in_browser=True", "--LabApp.extension_manager=readonly", "--LabApp.news_url=None",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "lab.log", "w"))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start:\n" + (tmp_path / "lab.log").read_text()[-2000:])
                time.sleep(0.5)
        yield url, tmp_path / "lab-runs"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_start_live_plot_stop(lab):
    from playwright.sync_api import sync_playwright

    url, runs_root = lab
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"{url}/lab/tree/00_quickstart.ipynb")
            page.wait_for_function("() => window.jupyterapp && document.querySelector('.jp-Notebook')",
                                   timeout=60_000)
            # Run all once the notebook's kernel session is ready. Fire and forget: the
            # command's promise settles only when every cell has run.
            page.evaluate("""async () => {
                const nb = window.jupyterapp.shell.currentWidget;
                await nb.context.ready;
                await nb.sessionContext.ready;
                window.jupyterapp.commands.execute('notebook:run-all-cells');
            }""")

            # The app cell ran: the tabs and buttons render, and the plot starts empty.
            page.wait_for_selector("button.wb-start", state="attached", timeout=150_000)
            page.wait_for_selector(".wb-loss-plot .js-plotly-plot", state="attached", timeout=30_000)
            # Running on past the app, the next cell explains that no run has finished.
            page.wait_for_selector("text=no finished run yet", state="attached", timeout=30_000)
            start_points = page.evaluate(POINTS_JS)
            assert start_points == 0

            page.locator("button.wb-start").click()
            page.wait_for_function(f"() => ({POINTS_JS})() >= {start_points + 3}", timeout=150_000)
            page.locator(".wb-app").scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "app-mid-training.png"), full_page=False)
            assert "training" in page.evaluate(STATUS_JS)
            assert page.locator("button.wb-start").is_disabled()

            page.locator("button.wb-stop").click()
            page.wait_for_function(f"() => ({STATUS_JS})().startsWith('stopped')", timeout=60_000)
            stopped_at = page.evaluate(POINTS_JS)
            status = page.evaluate(STATUS_JS)
            time.sleep(4)  # longer than one step takes: a running trainer would add points
            assert page.evaluate(POINTS_JS) == stopped_at
            step = int(status.split("at step ")[1].split()[0])
            assert start_points + 3 <= step < 2000, status
            assert page.locator("button.wb-start").is_enabled()
            page.screenshot(path=str(ARTIFACTS / "app-stopped.png"), full_page=False)

            # Resume continues the same run from its checkpoint: the curve grows on from where it stopped.
            page.locator("button.wb-resume").click()
            page.wait_for_function(f"() => ({POINTS_JS})() >= {stopped_at + 2}", timeout=150_000)
            page.locator("button.wb-stop").click()
            page.wait_for_function(f"() => ({STATUS_JS})().startsWith('stopped')", timeout=60_000)
            assert int(page.evaluate(STATUS_JS).split("at step ")[1].split()[0]) >= step + 2
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "app-failure.png"))
            raise
        finally:
            browser.close()
    # The stopped run kept what it trained: a run directory with its records and summary.
    runs = list(runs_root.iterdir())
    assert len(runs) == 1 and (runs[0] / "summary.json").is_file()
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert summary["resumed_from"].endswith(f"checkpoint-{step}"), summary
