"""Every notebook in notebooks/ passes `workbench check` with its `ci` profile: the same
function the command runs (papermill in a worker process, HTML export, report data), so
what users run in CI is what we test.

Tiny settings live in each notebook's own metadata (`metadata.workbench.profiles.ci`, see
docs/notebook-ci.md; the older `metadata.workbench.test_parameters` still counts as `ci`);
every notebook must have one."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from workbench.checking import check_notebooks
from workbench.checking.profiles import DEFAULT_PROFILE, notebook_profiles
from workbench.checking.report_junit import failure_text
from workbench.notebooks import execute

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))


def _check_all(out):
    return check_notebooks(PATHS, profile=DEFAULT_PROFILE, out_dir=out, jobs=2, timeout=1800)


@pytest.fixture(scope="module")
def checked(built_once):
    """One `workbench check notebooks/ --profile ci --jobs 2` for the whole session: two
    kernels side by side with one thread each (kernel start-up and imports are single-threaded,
    so this is ~2× faster on 2 cores than one at a time), results looked up per notebook."""
    check = built_once("notebook-check", _check_all)
    return {r.path.name: r for r in check.results}, check


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_every_notebook_has_a_ci_profile(path):
    assert DEFAULT_PROFILE in notebook_profiles(nbformat.read(path, as_version=4)), \
        f"{path.name}: add metadata.workbench.profiles.ci with tiny settings (docs/notebook-ci.md)"


def _outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", "") if out.output_type == "stream"
                         else str(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_passes_check_with_ci_profile(path, checked):
    results, check = checked
    result = results[path.name]
    assert result.status == "passed", f"{path.name} {result.status}:\n{failure_text(result)}\n(see {result.executed})"
    assert result.html is not None and result.html.is_file()
    nb = nbformat.read(result.executed, as_version=4)
    assert nb.metadata.papermill.parameters == result.parameters
    if path.name == "00_quickstart.ipynb":
        # Deterministic outputs of the quickstart under these parameters.
        text = _outputs_text(nb)
        assert "(completed after 2 steps)" in text
        assert "trainable parameters: 16,384 of 3,219,776" in text
        kinds = {k for c in nb.cells for o in c.get("outputs", []) for k in o.get("data", {})}
        assert "application/vnd.plotly.v1+json" in kinds  # static curves, not a dead widget
        assert (result.executed.parent / "run" / "summary.json").is_file()  # run_dir beside the notebook


def test_unknown_parameter_is_one_clear_error(tmp_path):
    from workbench.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="parameter of 00_quickstart.ipynb 'max_stpes'"):
        execute(NOTEBOOKS / "00_quickstart.ipynb", tmp_path, {"max_stpes": 2})
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("name,value,message", [
    ("max_steps", "abc", "parameter max_steps of train_run.ipynb: expected a number like its default 20, got 'abc'"),
    ("resume", "maybe", "parameter resume of train_run.ipynb: expected true or false like its default False"),
])
def test_a_word_for_a_number_or_switch_is_refused_before_the_kernel(tmp_path, capsys, name, value, message):
    """`workbench run NB -p max_steps abc` started a kernel and failed in cell 3; a number given
    as text (YAML reads `1e-3` as a string) still passes, as it did."""
    from workbench.cli.main import main
    from workbench.notebooks import check_parameters

    template = NOTEBOOKS.parent / "templates" / "train_run.ipynb"
    assert main(["run", str(template), "-p", name, value, "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and not (tmp_path / "out").exists(), err
    check_parameters(template, {"learning_rate": "1e-3", "max_steps": "20", "model": "tiny-llama", "resume": True})


def test_a_kernel_that_dies_starting_is_started_once_more(tmp_path, monkeypatch):
    """A kernel can die before answering when another process took one of its ports (parallel
    trials); execute starts it a second time and no more. Here a real kernelspec whose process
    exits at once, counting its starts."""
    import json
    import sys

    starts = tmp_path / "starts"
    spec = tmp_path / "jupyter" / "kernels" / "dies"
    spec.mkdir(parents=True)
    spec.joinpath("kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-c", f"open({str(starts)!r}, 'a').write('x')", "{connection_file}"],
        "display_name": "dies", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    with pytest.raises(RuntimeError, match="Kernel died before replying to kernel_info"):
        execute(NOTEBOOKS / "00_quickstart.ipynb", tmp_path / "out", {}, kernel="dies", html=False)
    assert starts.read_text() == "xx"


def test_relative_paths_in_parameters_are_the_callers(tmp_path, monkeypatch):
    """The kernel runs in the notebook's folder: `-p dataset rows.csv`, typed beside rows.csv, was
    looked up beside the notebook ("no such file"), and `-p run_dir runs/x` was made there."""
    from workbench.cli.main import main

    nb_dir, caller = tmp_path / "notebooks", tmp_path / "project"
    nb_dir.mkdir()
    (caller / "data").mkdir(parents=True)
    (caller / "data" / "rows.csv").write_text("prompt,completion\n")
    (nb_dir / "here.txt").write_text("the notebook's own file\n")
    (caller / "instructions").mkdir()  # a folder named like the built-in dataset: the word stays a name
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    params = 'data = ""\nown = ""\nrun_dir = ""\nword = ""'
    nb.cells = [nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("import os\nprint(os.getcwd(), data, own, run_dir, word)\n"
                                          "assert open(data).read().startswith('prompt')\n"
                                          "assert open(own).read() == \"the notebook's own file\\n\"")]
    nbformat.write(nb, nb_dir / "paths.ipynb")
    monkeypatch.chdir(caller)
    argv = ["run", str(nb_dir / "paths.ipynb"), "-o", "out", "-p", "data", "data/rows.csv", "-p", "own", "here.txt",
            "-p", "run_dir", "runs/x", "-p", "word", "instructions"]
    assert main(argv) == 0
    executed = nbformat.read(caller / "out" / "paths.ipynb", 4)
    printed = "".join(o.get("text", "") for o in executed.cells[-1].outputs).split()
    assert printed == [str(nb_dir), str(caller / "data" / "rows.csv"), "here.txt", str(caller / "runs" / "x"),
                       "instructions"]
