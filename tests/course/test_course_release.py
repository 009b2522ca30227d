"""The course's fast checks (no kernel): bad input to `workbench course`, the student release
made by nbgrader's preprocessors, the shape of the solution notebooks, and the words the
check helpers say to a student."""
from __future__ import annotations

import ast
import contextlib
import io
from pathlib import Path

import nbformat
import pytest

from workbench.checking.profiles import notebook_profiles
from workbench.cli.main import main
from workbench.course import course_notebooks, release_notebook
from workbench.course.checks import Case, ExerciseFailed, check_function, check_value

UNITS = course_notebooks()
ROOT = Path(__file__).resolve().parents[2]


def _cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["course", *map(str, argv)])
    return rc, out.getvalue(), err.getvalue()


def test_seven_units():
    assert [p.stem for p in UNITS] == ["01_sft_label_mask", "02_peft", "03_preference_learning", "04_token_shift",
                                       "05_data_selection", "06_onpolicy_rewards", "07_merging_decoding"]


@pytest.mark.parametrize("make, expected", [
    (lambda tmp: tmp / "missing.ipynb", "does not exist"),
    (lambda tmp: ROOT / "README.md", "expected a .ipynb notebook"),
    (lambda tmp: (tmp / "junk.ipynb").write_text("not json") and tmp / "junk.ipynb", "not a notebook"),
    (lambda tmp: ROOT / "notebooks" / "00_quickstart.ipynb", "not a course notebook"),
    (lambda tmp: tmp, "is a folder"),
], ids=["missing", "not-a-notebook", "invalid-json", "not-from-the-course", "folder"])
def test_check_bad_input_is_one_line_exit_2(tmp_path, make, expected):
    rc, out, err = _cli("check", make(tmp_path))
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("workbench course: error:") and expected in err, err


def test_build_bad_input_is_one_line_exit_2(tmp_path):
    (tmp_path / "file").write_text("x")
    for argv in (["build", "--out", tmp_path / "file"], ["build", "--out", tmp_path / "o", "--source", tmp_path],
                 ["check", UNITS[0], "--threads", "0"]):
        rc, out, err = _cli(*argv)
        assert rc == 2 and err.count("\n") == 1 and "error:" in err, (argv, err)


def test_build_never_overwrites_a_students_work_unasked(tmp_path):
    out = tmp_path / "release"
    assert _cli("build", "--out", out, UNITS[1])[0] == 0
    assert _cli("build", "--out", out, UNITS[1])[0] == 0  # the same release again: harmless
    work = out / UNITS[1].name
    nb = nbformat.read(work, as_version=4)
    nb.cells[-1].source += "\n# the student's answer"
    nbformat.write(nb, work)
    edited = work.read_text()
    rc, out_text, err = _cli("build", "--out", out, UNITS[1])
    assert rc == 2 and err.count("\n") == 1 and UNITS[1].name in err and "--force" in err, err
    assert work.read_text() == edited  # kept, byte for byte
    rc, _, _ = _cli("build", "--out", out, UNITS[1], "--force")
    assert rc == 0 and "the student's answer" not in work.read_text()
    assert sorted(p.name for p in out.iterdir()) == [UNITS[1].name]  # no temporary file left


@pytest.mark.parametrize("flag", ["--out", "--json"])
def test_grading_never_writes_over_the_submission(tmp_path, flag):
    sub = tmp_path / "submission.ipynb"
    sub.write_text(UNITS[0].read_text())
    before = sub.read_text()
    rc, _, err = _cli("check", sub, "--no-execute", flag, tmp_path / "." / "submission.ipynb")
    assert rc == 2 and err.count("\n") == 1 and "is the input" in err and "itself" in err, err
    assert sub.read_text() == before


def _code(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.stem)
def test_solution_notebook_shape(path):
    nb = nbformat.read(path, as_version=4)
    cells = nb.cells
    params = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    # Stored outputs come from the ci profile: papermill's injected cell right after `parameters`.
    injected = cells[params[0] + 1]
    assert "injected-parameters" in injected.metadata.get("tags", [])
    ci = notebook_profiles(nb)["ci"]
    assigned = {t.targets[0].id: ast.literal_eval(t.value) for t in ast.parse(injected.source).body}
    assert assigned == ci, f"{path.name}: stored outputs are not from the current ci profile; rerun " \
                           f"workbench.course.build.refresh_outputs (docs/course.md)"
    solutions = [i for i, c in enumerate(cells) if (c.metadata.get("nbgrader") or {}).get("solution")]
    assert 2 <= len(solutions) <= 4, f"{path.name}: {len(solutions)} exercises"
    for i in solutions:
        assert "### BEGIN SOLUTION" in cells[i].source and "### END SOLUTION" in cells[i].source
        test = cells[i + 1].metadata.get("nbgrader") or {}
        assert test.get("grade") and test.get("points"), f"{path.name} cell {i}: no graded check right after it"
        assert "### BEGIN HIDDEN TESTS" in cells[i + 1].source and "checks.check_" in cells[i + 1].source
    for i, c in enumerate(_code(nb)):
        assert c.execution_count is not None, f"{path.name}: code cell {i} stored without being run"
        assert not [o for o in c.outputs if o.output_type == "error"]
        if (c.metadata.get("nbgrader") or {}).get("grade"):
            assert "nbval-ignore-output" not in c.metadata.get("tags", [])  # verdicts are always compared
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


def test_release_strips_solutions_hidden_tests_and_ci_settings(tmp_path):
    rc, out, err = _cli("build", "--out", tmp_path)
    assert rc == 0 and "7 notebooks" in out, err
    for path in UNITS:
        src = nbformat.read(path, as_version=4)
        rel = nbformat.read(tmp_path / path.name, as_version=4)
        text = "\n".join(c.source for c in rel.cells)
        assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
        # one stub per solution region
        assert text.count("raise NotImplementedError()") == sum(c.source.count("### BEGIN SOLUTION") for c in src.cells)
        assert not any("injected-parameters" in c.metadata.get("tags", []) for c in rel.cells)
        params = next(c for c in rel.cells if "parameters" in c.metadata.get("tags", [])).source
        values = [ast.literal_eval(t.value) for t in ast.parse(params).body]
        assert "tiny-llama" not in values and "urial:tiny-llama" not in values  # the student's defaults
        assert all(not c.outputs and c.execution_count is None for c in _code(rel))
        assert all("checksum" in c.metadata["nbgrader"] for c in rel.cells
                   if (c.metadata.get("nbgrader") or {}).get("grade"))
        # prose and the visible tests survive
        assert len(rel.cells) == len(src.cells) - 1
        assert rel.metadata.workbench.course == src.metadata.workbench.course
    # release_notebook leaves its input alone
    src = nbformat.read(UNITS[0], as_version=4)
    release_notebook(src)
    assert "### BEGIN SOLUTION" in "".join(c.source for c in src.cells)


def test_check_messages_speak_to_the_student(capsys):
    def stub(x):
        raise NotImplementedError()

    with pytest.raises(ExerciseFailed, match=r"stub is not done yet: replace `raise NotImplementedError\(\)`"):
        check_function(stub, [Case((1,), 2)])

    def wrong(x):
        return x + 2

    with pytest.raises(ExerciseFailed) as e:
        check_function(wrong, [Case((1,), 2, "first"), Case((3,), 4, "second")], hint="add one")
    msg = e.value.message
    assert "wrong gives the wrong answer on case 1 of 2 (first)" in msg
    assert "expected: 2" in msg and "got:      3" in msg and "Hint: add one" in msg
    assert isinstance(e.value, AssertionError)  # nbgrader scores the cell 0

    def crashes(x):
        return x["key"]

    with pytest.raises(ExerciseFailed, match="crashes raised TypeError"):
        check_function(crashes, [Case((1,), 2)])
    with pytest.raises(ExerciseFailed, match="expected shape"):
        check_value([1, 2], [1, 2, 3], what="the list")
    check_function(lambda x: x + 1.0000001, [Case((1,), 2)], name="close enough")
    assert "✓ close enough: all 1 cases match." in capsys.readouterr().out


def test_a_renamed_submission_finds_its_solution_notebook_by_unit(tmp_path):
    from workbench.course.notebooks import SOURCE_DIR, source_for

    for path in UNITS:
        nb = release_notebook(nbformat.read(path, as_version=4))
        renamed = tmp_path / f"alice-{path.stem[:2]}.ipynb"
        nbformat.write(nb, renamed)
        assert source_for(renamed, nb) == SOURCE_DIR / path.name
    other = nbformat.read(UNITS[0], as_version=4)
    other.metadata.workbench.course["unit"] = 99
    assert source_for(tmp_path / "x.ipynb", other) is None
