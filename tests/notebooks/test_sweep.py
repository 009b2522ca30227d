"""`workbench sweep`: a 2x2 grid on tiny-llama gives 4 executed notebooks and one report;
a failing configuration is reported without stopping the others."""
from __future__ import annotations

import re

import nbformat
import pytest
import yaml

from workbench.cli.main import main
from workbench.errors import UnknownNameError, WorkbenchError
from workbench.runs.run import resume_step
from workbench.sweeps import load_sweep

SHARED = {"model": "tiny-llama", "max_steps": 2, "eval_steps": 2, "eval_rows": 4, "sample_prompts": 1}


def _write(tmp_path, spec) -> str:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def test_2x2_grid_gives_four_notebooks_and_one_report(tmp_path, capsys):
    sweep = _write(tmp_path, {"template": "train_run.ipynb", "workers": 2, "parameters": SHARED,
                              "grid": {"learning_rate": [1e-3, 1e-4], "peft": ["lora", "full"]}})
    out = tmp_path / "out"
    assert main(["sweep", sweep, "-o", str(out)]) == 0
    notebooks = sorted(out.glob("*/train_run.ipynb"))
    assert len(notebooks) == 4
    for nb_path in notebooks:
        nb = nbformat.read(nb_path, as_version=4)
        assert nb.metadata.papermill.exception is None
        assert (nb_path.parent / "run" / "summary.json").is_file()
    report = (out / "report.html").read_text()
    assert capsys.readouterr().out.count("4/4 configurations succeeded") == 1
    # one table row per configuration, each with its parameters and a final loss
    rows = re.findall(r"<tr>\s*<td>(\d)</td>", report)
    assert sorted(rows) == ["0", "1", "2", "3"]
    assert report.count("<td>full</td>") == 2 and report.count("<td>lora</td>") == 2
    assert "plotly" in report and "learning_rate=0.001,peft=full" in report  # overlaid curves legend

    # The same sweep again into its folder keeps what completed: nothing is executed again (it once
    # re-ran every notebook, each failing on its existing run, and replaced the report with failures).
    stamps = {p: p.stat().st_mtime_ns for p in notebooks}
    assert main(["sweep", sweep, "-o", str(out)]) == 0
    assert "4/4 configurations succeeded" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in notebooks} == stamps
    assert sorted(re.findall(r"<tr>\s*<td>(\d)</td>", (out / "report.html").read_text())) == ["0", "1", "2", "3"]
    # Another sweep into the same folder (other shared parameters) is refused before anything runs.
    other = _write(tmp_path, {"template": "train_run.ipynb", "workers": 2, "parameters": {**SHARED, "max_steps": 3},
                              "grid": {"learning_rate": [1e-3, 1e-4], "peft": ["lora", "full"]}})
    assert main(["sweep", other, "-o", str(out)]) == 2
    assert "holds another sweep's configuration 0 (parameters differ: max_steps)" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in notebooks} == stamps


def test_an_interrupted_sweep_resumes_its_run_where_it_stopped(tmp_path):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) in the middle of a
    configuration's run; the same sweep again resumes that run from its last checkpoint. The
    interrupted sweep also exits at once, not after starting the configuration it had queued."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    sweep = _write(tmp_path, {"template": "train_run.ipynb", "workers": 1,
                              "parameters": {**SHARED, "max_steps": 80, "eval_steps": 1000, "sample_prompts": 0},
                              "list": [{"learning_rate": 1e-3}, {"learning_rate": 1e-4}]})
    out = tmp_path / "out"
    run = out / "000-learning_rate=0.001" / "run"
    cmd = [str(Path(sys.executable).with_name("workbench")), "sweep", sweep, "-o", str(out)]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 240
        # a checkpoint folder exists before its save finishes, and a resume skips an unfinished
        # one: wait until one at step >= 20 is sealed complete
        while resume_step(run) < 20:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-2000:]
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)
        stopped = time.monotonic()
        assert proc.wait(timeout=60) == 130
        assert time.monotonic() - stopped < 20  # not after running the queued configuration
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (out / "001-learning_rate=0.0001" / "run" / "summary.json").exists()
    assert main(["sweep", sweep, "-o", str(out)]) == 0  # the same sweep again
    summary = json.loads((run / "summary.json").read_text())
    records = map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
    steps = [r["step"] for r in records if r["kind"] == "train"]
    assert summary["status"] == "completed" and int(summary["resumed_from"].rsplit("-", 1)[1]) >= 20
    assert steps == list(range(1, 81))  # one record per step: continued, not restarted
    assert json.loads((out / "001-learning_rate=0.0001" / "run" / "summary.json").read_text())["status"] == "completed"


def test_failing_configuration_is_reported_and_others_finish(tmp_path, capsys):
    sweep = _write(tmp_path, {"template": "train_run.ipynb", "parameters": {**SHARED, "max_steps": 1},
                              "list": [{"peft": "lora"}, {"peft": "bogus"}]})
    out = tmp_path / "out"
    assert main(["sweep", sweep, "-o", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "1/2 configurations succeeded" in printed
    assert "failed peft=bogus: UnknownNameError: unknown PEFT type 'bogus'" in printed
    assert (out / "000-peft=lora" / "run" / "summary.json").is_file()
    report = (out / "report.html").read_text()
    assert "failed" in report and "unknown PEFT type" in report


def test_a_second_sweep_into_a_folder_in_use_is_refused(tmp_path, capsys):
    from workbench.runs.lock import RunLock

    sweep = _write(tmp_path, {"template": "train_run.ipynb", "parameters": SHARED, "list": [{"peft": "lora"}]})
    out = tmp_path / "out"
    out.mkdir()
    held = RunLock(out, what="sweep folder").acquire()  # as a running sweep holds it
    try:
        assert main(["sweep", sweep, "-o", str(out)]) == 2
    finally:
        held.release()
    err = capsys.readouterr().err
    assert "sweep folder" in err and "is in use by another process" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == [".lock"]


def test_bad_sweep_files_are_one_clear_error(tmp_path):
    with pytest.raises(UnknownNameError, match="sweep key .* 'gird'"):
        load_sweep(_write(tmp_path, {"template": "train_run.ipynb", "gird": {}}))
    with pytest.raises(WorkbenchError, match="template 'nope.ipynb' not found"):
        load_sweep(_write(tmp_path, {"template": "nope.ipynb", "grid": {"peft": ["lora"]}}))
    with pytest.raises(WorkbenchError, match="grid.peft must be a non-empty list"):
        load_sweep(_write(tmp_path, {"template": "train_run.ipynb", "grid": {"peft": "lora"}}))
    with pytest.raises(WorkbenchError, match=r"configurations 0 and 2 are the same \(peft=lora\)"):
        load_sweep(_write(tmp_path, {"template": "train_run.ipynb", "grid": {"peft": ["lora", "full", "lora"]}}))
    with pytest.raises(WorkbenchError, match=r"configurations 1 and 2 are the same \(peft=full,seed=1\)"):
        load_sweep(_write(tmp_path, {"template": "train_run.ipynb", "grid": {"peft": ["lora", "full"], "seed": [1]},
                                     "list": [{"peft": "full", "seed": 1}]}))
    with pytest.raises(UnknownNameError, match="parameter of train_run.ipynb 'lr'"):
        load_sweep(_write(tmp_path, {"template": "train_run.ipynb", "grid": {"lr": [1, 2]}}))
    assert main(["sweep", str(tmp_path / "missing.yaml")]) == 2
