"""`workbench check` on tiny notebooks that load no model: statuses, JUnit and HTML reports,
exit codes, nbval output comparison, bad input (exit 2 before anything runs), and the
figures of the executed notebook rendered in a real browser."""
from __future__ import annotations

import contextlib
import importlib.util
import io
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import nbformat
import pytest
import yaml

from workbench.checking import check_notebooks
from workbench.checking.compare import compare_notebooks
from workbench.checking.runner import threads_per_job
from workbench.cli.main import main

HERE = Path(__file__).resolve().parent
NOTEBOOKS = HERE / "notebooks"
PASSING = NOTEBOOKS / "passing.ipynb"
TIMEOUT = "8"  # seconds per notebook from its first cell; slow.ipynb sleeps far longer
JOBS = 3


def _cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["check", *map(str, argv)])
    return rc, out.getvalue(), err.getvalue()


def _changed_output_check(tmp: Path):
    """passing.ipynb stores `3` as the checked output for n=3; run it with n=4 (a copy
    without the figure cell: nothing here needs plotly)."""
    nb = nbformat.read(PASSING, as_version=4)
    nb.cells = nb.cells[:-1]
    copy = tmp / "nb" / "passing.ipynb"
    copy.parent.mkdir()
    nbformat.write(nb, copy)
    params = tmp / "p.yaml"
    params.write_text(yaml.safe_dump({"passing.ipynb": {"n": 4}}))
    return check_notebooks([copy], params_file=params, out_dir=tmp / "out", timeout=60)


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """One check of the folder (passing, failing, slow), all three in parallel; meanwhile
    (slow.ipynb mostly sleeps) the changed-output check runs in a thread."""
    tmp = tmp_path_factory.mktemp("check")
    changed: dict = {}
    thread = threading.Thread(target=lambda: changed.update(result=_changed_output_check(tmp_path_factory.mktemp(
        "changed"))))
    thread.start()
    try:
        rc, out, err = _cli(NOTEBOOKS, "--timeout", TIMEOUT, "--jobs", JOBS, "-o", tmp / "out",
                            "--junit", tmp / "report.xml", "--html", tmp / "report.html")
    finally:
        thread.join()
    return {"rc": rc, "out": out, "err": err, "dir": tmp, "changed": changed.get("result")}


def test_statuses_exit_code_and_junit(folder_run):
    assert folder_run["rc"] == 1, folder_run["out"] + folder_run["err"]
    out = folder_run["out"]
    assert "PASSED   " in out and "FAILED   " in out and "TIMEOUT  " in out
    assert "1 passed, 1 failed, 1 timed out" in out

    root = ET.parse(folder_run["dir"] / "report.xml").getroot()
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert sorted(cases) == ["failing.ipynb", "passing.ipynb", "slow.ipynb"]
    assert all(float(c.get("time")) > 0 for c in cases.values())
    suite = root.find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")

    assert cases["passing.ipynb"].find("failure") is None and cases["passing.ipynb"].find("error") is None
    failure = cases["failing.ipynb"].find("failure")
    assert failure.get("type") == "ZeroDivisionError"
    # The failing cell (2nd code cell, after the parameters), its source, the error's last lines.
    assert "cell 2:" in failure.text and "y = x / divisor" in failure.text
    assert failure.text.rstrip().endswith("ZeroDivisionError: division by zero")
    timeout = cases["slow.ipynb"].find("error")
    assert timeout.get("type") == "Timeout" and "time.sleep(seconds)" in timeout.text


def test_html_summary_links_each_executed_notebook(folder_run):
    report = (folder_run["dir"] / "report.html").read_text()
    for name, status in (("passing", "passed"), ("failing", "failed"), ("slow", "timed out")):
        assert f'href="out/{name}/{name}.html"' in report
        assert (folder_run["dir"] / "out" / name / f"{name}.html").is_file()
        assert f'data-status="{status}"' in report


def test_kernels_share_the_cores(folder_run):
    nb = nbformat.read(folder_run["dir"] / "out" / "passing" / "passing.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert f"threads {threads_per_job(JOBS)}\n" in text


def test_changed_deterministic_output_fails(folder_run):
    result = folder_run["changed"]
    (r,) = result.results
    assert r.status == "failed" and result.exit_code == 1
    assert r.failure["kind"] == "mismatch" and r.failure["cell"] == 2
    assert "print(sum(range(n)))" in r.failure["source"]
    assert any("6" in line for line in r.failure["lines"]) and any("3" in line for line in r.failure["lines"])


def test_nbval_modes_on_stored_outputs():
    ref = nbformat.read(PASSING, as_version=4)
    run = nbformat.from_dict(nbformat.from_dict(ref))
    run.cells[2].outputs[0]["text"] = "4\n"          # the cell marked NBVAL_CHECK_OUTPUT
    assert [m.cell for m in compare_notebooks(ref, run, "lax")] == [2]
    assert compare_notebooks(ref, run, "off") == []
    ref.cells[2].source = ref.cells[2].source.replace("# NBVAL_CHECK_OUTPUT\n", "")
    assert compare_notebooks(ref, run, "lax") == []       # unmarked: lax ignores it
    assert [m.cell for m in compare_notebooks(ref, run, "strict")] == [2]
    ref.cells[2].metadata["tags"] = ["nbval-ignore-output"]
    assert compare_notebooks(ref, run, "strict") == []


def test_sanitize_patterns_mask_what_varies():
    """nbval's --nbval-sanitize-with file: a regex replaced in both outputs before comparing."""
    import tempfile

    from workbench.checking.compare import sanitize_patterns

    ref = nbformat.read(PASSING, as_version=4)
    run = nbformat.from_dict(nbformat.from_dict(ref))
    run.cells[2].outputs[0]["text"] = "4\n"
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "sanitize.cfg"
        f.write_text("[digits]\nregex: \\d+\nreplace: N\n")
        assert compare_notebooks(ref, run, "lax", sanitize_patterns(f)) == []
    assert [m.cell for m in compare_notebooks(ref, run, "lax", {"7": "N"})] == [2]  # a pattern that misses


@pytest.mark.parametrize("argv, message", [
    (["--params", "{p}"], "unknown parameter of passing.ipynb (from {p}) 'm'; known: n"),
    (["--profile", "nope"], "unknown profile of passing.ipynb 'nope'; known: big, ci"),
    # a file with no patterns (another file, 'regx:'), which sanitized nothing silently, or a bad regex
    (["--nbval-sanitize-with", "{p}"], "sanitize file {p} holds no 'regex: …' / 'replace: …' pairs (nbval's format)"),
    (["--nbval-sanitize-with", "{bad}"], "sanitize file {bad}: regex '[0-' does not compile"),
])
def test_bad_input_exits_2_before_running(tmp_path, argv, message):
    p, bad = tmp_path / "p.yaml", tmp_path / "bad.cfg"
    p.write_text(yaml.safe_dump({"passing.ipynb": {"m": 1}}))
    bad.write_text("regex: [0-\nreplace: N\n")
    argv = [a.format(p=p, bad=bad) for a in argv]
    rc, out, err = _cli(PASSING, *argv, "-o", tmp_path / "out", "--junit", tmp_path / "r.xml")
    assert rc == 2
    assert err.strip().startswith(f"workbench check: error: {message.format(p=p, bad=bad)}"), err
    assert not (tmp_path / "out").exists() and not (tmp_path / "r.xml").exists()


def test_no_notebooks_and_undeclared_common_parameter_exit_2(tmp_path):
    (tmp_path / "empty").mkdir()
    rc, _, err = _cli(tmp_path / "empty")
    assert rc == 2 and "no notebooks (*.ipynb) found" in err and len(err.strip().splitlines()) == 1
    p = tmp_path / "p.yaml"
    p.write_text("nope: 1\n")
    rc, _, err = _cli(NOTEBOOKS, "--params", p, "-o", tmp_path / "out")
    assert rc == 2 and "'nope'" in err and not (tmp_path / "out").exists()


def _browser_helpers():
    """Chromium lookup and launch flags of the JupyterLab browser test, reused."""
    path = HERE.parent / "browser" / "test_app_browser.py"
    spec = importlib.util.spec_from_file_location("_wb_browser_test", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.CHROMIUM, mod.CHROMIUM_ARGS


CHROMIUM, CHROMIUM_ARGS = _browser_helpers()


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_bare_figure_renders_in_the_report_and_export(folder_run):
    """passing.ipynb ends on a bare plotly figure (only plotly JSON in the executed notebook):
    follow the report's link to its HTML export and find the drawn plot."""
    from playwright.sync_api import sync_playwright

    executed = nbformat.read(folder_run["dir"] / "out" / "passing" / "passing.ipynb", as_version=4)
    last = executed.cells[-1].outputs[0]["data"]
    assert "application/vnd.plotly.v1+json" in last and "text/html" not in last
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto((folder_run["dir"] / "report.html").as_uri())
            page.locator('a[href="out/passing/passing.html"]').click()
            page.wait_for_selector(".plotly .main-svg", state="attached", timeout=30_000)
            assert page.locator(".js-plotly-plot .main-svg").count() >= 1
            assert page.locator(".plotly .bars .point").count() == 3  # the figure's three bars, drawn
        finally:
            browser.close()


def test_profiles_from_metadata_and_overrides(tmp_path):
    """Planning only (nothing runs): the default is the `ci` profile, --profile picks another,
    --params wins, and the older `test_parameters` key still counts as `ci`."""
    from workbench.checking import plan_check
    from workbench.checking.profiles import notebook_profiles

    assert plan_check([PASSING]).notebooks[0].parameters == {"n": 3}
    assert plan_check([PASSING], profile="big").notebooks[0].parameters == {"n": 10}
    own = plan_check([PASSING], profile="defaults").notebooks[0]
    assert (own.profile, own.parameters) == (None, {})  # the parameters cell as written
    p = tmp_path / "p.yaml"
    p.write_text("n: 5\n")
    assert plan_check([PASSING], profile="big", params_file=p).notebooks[0].parameters == {"n": 5}
    failing = plan_check([NOTEBOOKS / "failing.ipynb"]).notebooks[0]
    assert (failing.profile, failing.parameters) == (None, {})  # no profiles: the notebook's defaults
    legacy = nbformat.v4.new_notebook(metadata={"workbench": {"test_parameters": {"n": 1}}})
    assert notebook_profiles(legacy) == {"ci": {"n": 1}}


def test_a_notebook_that_names_no_kernel_runs_with_the_default_one(tmp_path):
    """A notebook written by nbformat (or an editor that leaves no kernelspec) failed in `check`
    and `run` with papermill's "No kernel name found in notebook"; JupyterLab opens it with the
    default kernel, and so do we."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print(6 * 7)")]
    path = tmp_path / "plain.ipynb"
    nbformat.write(nb, path)
    rc, out, err = _cli(path, "-o", tmp_path / "out")
    assert rc == 0 and "1 notebooks: 1 passed" in out, out + err
    executed = nbformat.read(str(tmp_path / "out" / "plain" / "plain.ipynb"), as_version=4)
    assert executed.cells[0].outputs[0]["text"] == "42\n"
