"""The graded course in CI (issue 18), with real notebook execution, real nbgrader
preprocessors and real nbval, each unit executed twice:

1. nbval (`pytest --nbval`, in a subprocess) re-executes the notebooks as committed, headless
   with tiny settings: their stored outputs come from a run with the `ci` profile injected
   (papermill's `injected-parameters` cell is committed with them), so nbval reruns the same
   settings, and any error or changed output in any cell fails it;
2. the student release (`workbench course build`) graded by `workbench course check --profile
   ci`, which executes it: 0 points, every exercise scored, the grader does not crash.

The solution notebooks are graded by `workbench course check --no-execute`: their stored
outputs, which step 1 reproduces by a fresh run, must score full marks with no error anywhere.
(Executing them a third time, as this test did before, ran the same cells as nbval for ~65 s.)

nbval runs in the background while the grading runs here, one kernel each with one thread,
so the two share the 2 cores. The same nbval run also checks a one-cell notebook that prints
what a cell of unit 3 prints, stored with that output changed, which must fail.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from unittest import mock

import nbformat
import pytest

from workbench.cli.main import main
from workbench.course import course_notebooks

pytestmark = pytest.mark.slow

UNITS = course_notebooks()
TAMPERED = "03_preference_learning.ipynb"
TAMPER_FROM, TAMPER_TO = "reward accuracy 1.00", "reward accuracy 0.75"


def _cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["course", *map(str, argv)])
    return rc, out.getvalue(), err.getvalue()


def _tamper(src: Path, dest: Path) -> int:
    """A one-cell notebook that prints what one cell of `src` printed, stored with that output
    changed; returns its index among the code cells (nbval's "Cell N"). nbval, set up as for the
    units, must fail it. One cell rather than the whole unit re-run with the change: the unit's
    own fresh run is test_stored_outputs_pass_nbval; this checks that nbval compares such an
    output at all, and the unit's cell is one it compares (not tagged to be ignored)."""
    nb = nbformat.read(src, as_version=4)
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and TAMPER_FROM in out.get("text", ""):
                assert "nbval-ignore-output" not in cell.metadata.get("tags", [])
                name, text = out["name"], out["text"]
                printed = nbformat.v4.new_code_cell(f"import sys\n_ = sys.{name}.write({text!r})", execution_count=1)
                printed.outputs = [nbformat.v4.new_output("stream", name=name,
                                                          text=text.replace(TAMPER_FROM, TAMPER_TO))]
                dest.parent.mkdir(parents=True, exist_ok=True)
                nbformat.write(nbformat.v4.new_notebook(cells=[printed], metadata=nb.metadata), dest)
                return 0
    raise AssertionError(f"{src.name} no longer prints {TAMPER_FROM!r}: pick another output to change")


def _start_nbval(root: Path) -> subprocess.Popen:
    """`pytest --nbval` over copies of the committed notebooks (+ the tampered one), in its own
    folder so the repository's conftest and settings do not apply. JUnit XML says per cell
    what passed."""
    for path in UNITS:
        shutil.copy(path, root / path.name)
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "tmp").mkdir()  # nbval kills its kernels: what they leave in their temp folder stays in ours
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "TMPDIR": str(root / "tmp")}
    cmd = [sys.executable, "-m", "pytest", "--nbval", "--nbval-kernel-name", "python3", "-p", "no:cacheprovider",
           "-q", "--junitxml", str(root / "nbval.xml"), str(root)]
    return subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _nbval_results(xml: Path) -> dict[str, dict[str, str | None]]:
    """{JUnit class name (the notebook's path in the nbval folder, dotted): {"Cell N": failure
    text or None}}."""
    results: dict[str, dict[str, str | None]] = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        results.setdefault(case.get("classname", ""), {})[case.get("name")] = (
            None if failure is None else (failure.get("message", "") + "\n" + (failure.text or "")))
    return results


@pytest.fixture(scope="module")
def course_run(built_once):
    return built_once("course-grading", _grade_course)


def _grade_course(tmp: Path) -> dict:
    nbval_dir = tmp / "nbval"
    nbval_dir.mkdir()
    tampered_cell = _tamper(UNITS[[p.name for p in UNITS].index(TAMPERED)], nbval_dir / "tampered" / TAMPERED)
    nbval = _start_nbval(nbval_dir)
    try:
        release = tmp / "release"
        rc, out, err = _cli("build", "--out", release)
        assert rc == 0, err
        # A student who "fixes" a check cell gets it back from the solution notebook.
        unit7 = release / "07_merging_decoding.ipynb"
        nb = nbformat.read(unit7, as_version=4)
        check = next(c for c in nb.cells if (c.metadata.get("nbgrader") or {}).get("grade_id") == "check_trim")
        check.source = "pass  # trust me"
        nbformat.write(nb, unit7)
        grades = {}
        # The grader's kernels get a temp folder of their own: what the notebooks leave there is
        # checked below (the runs of units 2 and 5, ~160 MB, once stayed in /tmp after every grading).
        kernel_tmp = tmp / "kernel-tmp"
        kernel_tmp.mkdir()
        for kind, folder in (("solution", None), ("student", release)):
            for path in UNITS:
                nb_path = path if folder is None else folder / path.name
                scores = tmp / f"{kind}-{path.stem}.json"
                # the solutions' stored outputs are what nbval re-executes (above): graded as stored
                how = ("--no-execute",) if kind == "solution" else ("--threads", "1")
                with mock.patch.dict(os.environ, TMPDIR=str(kernel_tmp)):
                    rc, out, err = _cli("check", nb_path, "--profile", "ci", *how, "--json", scores,
                                        "--out", tmp / f"{kind}-{path.name}")
                assert rc == 0, f"{kind} {path.name}: {err}"
                grades[kind, path.name] = (json.loads(scores.read_text()), out)
        log, _ = nbval.communicate(timeout=1200)
    finally:
        if nbval.poll() is None:
            nbval.kill()
            nbval.wait()
    return {"grades": grades, "release": release, "nbval_rc": nbval.returncode, "nbval_log": log,
            "nbval": _nbval_results(nbval_dir / "nbval.xml"), "tampered_cell": tampered_cell, "tmp": tmp,
            "kernel_tmp_left": sorted(p.name for p in kernel_tmp.iterdir())}


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.stem)
def test_solution_notebook_grades_full_marks(course_run, path):
    scores, out = course_run["grades"]["solution", path.name]
    failed = [e for e in scores["exercises"] if e["points"] < e["max_points"]]
    assert not failed, f"{path.name}: {failed}"
    assert 2 <= len(scores["exercises"]) and scores["total"] == scores["max_total"] > 0
    assert out.rstrip().endswith("(100%)") and "stored outputs, not re-run" in out, out
    assert not scores["executed"]
    # The stored run had no error anywhere, not only in the graded cells …
    graded = nbformat.read(course_run["tmp"] / f"solution-{path.name}", as_version=4)
    errors = [(i, o.get("ename")) for i, c in enumerate(graded.cells) for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: cells raised {errors}"
    assert "tiny-llama" in graded.cells[2].source  # the ci profile was injected
    # … and test_stored_outputs_pass_nbval checks that a fresh headless run (nbval's) reproduces
    # every cell of it without an error.


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.stem)
def test_student_release_grades_zero_with_a_message_per_exercise(course_run, path):
    solution, _ = course_run["grades"]["solution", path.name]
    scores, out = course_run["grades"]["student", path.name]
    assert [e["grade_id"] for e in scores["exercises"]] == [e["grade_id"] for e in solution["exercises"]]
    assert scores["total"] == 0 and scores["max_total"] == solution["max_total"]
    for e in scores["exercises"]:
        assert e["message"], f"{path.name} {e['grade_id']}: failed without a message"
        assert "Traceback" not in e["message"]
    # The first check meets the untouched stub: the student is told it is not done yet.
    assert "not done yet" in scores["exercises"][0]["message"], scores["exercises"][0]
    assert out.rstrip().endswith("(0%)"), out


def test_graded_kernels_leave_nothing_in_their_temp_folder(course_run):
    # Units 2 and 5 train into a temporary folder unless given runs_dir; it must go with the kernel.
    # (torch's compiler cache is meant to stay.)
    left = [name for name in course_run["kernel_tmp_left"] if not name.startswith("torchinductor_")]
    assert not left, f"left in the kernels' temp folder after grading: {left}"


def test_edited_check_cell_is_restored_before_grading(course_run):
    scores, _ = course_run["grades"]["student", "07_merging_decoding.ipynb"]
    trim = next(e for e in scores["exercises"] if e["grade_id"] == "check_trim")
    assert trim["points"] == 0 and "trim is not done yet" in trim["message"]


def _nbval_for(course_run, name: str) -> dict[str, str | None]:
    assert name in course_run["nbval"], f"no nbval results for {name}: {list(course_run['nbval'])}\n" \
                                        f"{course_run['nbval_log'][-3000:]}"
    return course_run["nbval"][name]


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.stem)
def test_stored_outputs_pass_nbval(course_run, path):
    cells = _nbval_for(course_run, path.name)
    failed = {name: text for name, text in cells.items() if text is not None}
    assert not failed, f"{path.name}: nbval failed:\n" + "\n".join(f"{k}: {v[:1500]}" for k, v in failed.items())
    assert len(cells) >= 10  # every code cell is an nbval item


def test_nbval_fails_when_a_stored_output_changes(course_run):
    cells = _nbval_for(course_run, f"tampered.{TAMPERED}")
    failed = {name: text for name, text in cells.items() if text is not None}
    assert list(failed) == [f"Cell {course_run['tampered_cell']}"], failed
    assert TAMPER_TO in next(iter(failed.values())) and course_run["nbval_rc"] == 1
    assert "1 failed" in course_run["nbval_log"], course_run["nbval_log"][-2000:]
