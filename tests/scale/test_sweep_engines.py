"""`workbench sweep --engine dask`: the same 2-configuration sweep on a local 2-worker Dask
cluster (one configuration per worker, side by side) gives the same report as the local
process pool; bad engine input is one line. (tests/notebooks/test_sweep.py covers a 2×2 grid
on the local pool.)"""
from __future__ import annotations

import html
import json
import os
import re
import socket
import subprocess
import sys
import time

import pytest
import yaml

from workbench.cli.main import main

# As small as a real run gets: 2 steps, no eval, no samples (the notebook's start-up dominates anyway).
SHARED = {"model": "tiny-llama", "max_steps": 2, "eval_rows": 0, "sample_prompts": 0}
GRID = {"learning_rate": [1e-3], "peft": ["lora", "full"]}


def _write(tmp_path, spec, name="sweep.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def _table(report: str) -> tuple[list[str], list[dict[str, str]]]:
    """(columns, rows) of the report's final-metrics table."""
    table = re.search(r"<table[^>]*wb-sweep.*?</table>", report, re.S).group(0)
    cols = [html.unescape(c) for c in re.findall(r"<th>(.*?)</th>", table, re.S)]
    rows = []
    for tr in re.findall(r"<tr>(.*?)</tr>", table.split("</thead>")[1], re.S):
        cells = [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td>(.*?)</td>", tr, re.S)]
        rows.append(dict(zip(cols, cells)))
    return cols, rows


def _trackio_losses(folder, runs: list[str]) -> dict[str, list]:
    """{run: [(step, loss)]} read back in a fresh process through trackio's own API."""
    code = ("import json, sys; from trackio.sqlite_storage import SQLiteStorage as S\n"
            "print(json.dumps({r: [(x['step'], x['loss']) for x in S.get_logs('lm-workbench', r) if 'loss' in x]"
            " for r in json.loads(sys.argv[1])}))")
    r = subprocess.run([sys.executable, "-c", code, json.dumps(runs)], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "TRACKIO_DIR": str(folder)})
    assert r.returncode == 0, r.stderr
    return {k: [tuple(x) for x in v] for k, v in json.loads(r.stdout.strip().splitlines()[-1]).items()}


@pytest.mark.slow
def test_dask_engine_gives_the_local_report(tmp_path, capsys):
    sweep = _write(tmp_path, {"template": "train_run.ipynb", "workers": 2, "parameters": SHARED, "grid": GRID})
    assert main(["sweep", sweep, "-o", str(tmp_path / "local")]) == 0
    # --tracker: the sweep option mirrors every configuration's run into <sweep folder>/trackio.
    assert main(["sweep", sweep, "--engine", "dask", "--tracker", "trackio", "-o", str(tmp_path / "dask")]) == 0
    assert capsys.readouterr().out.count("2/2 configurations succeeded") == 2
    cols_l, rows_l = _table((tmp_path / "local" / "report.html").read_text())
    cols_d, rows_d = _table((tmp_path / "dask" / "report.html").read_text())
    assert cols_l == cols_d and {"#", "learning_rate", "peft", "status", "loss"} <= set(cols_l)
    assert len(rows_l) == len(rows_d) == 2
    for a, b in zip(rows_l, rows_d):
        assert a["status"] == b["status"] == "completed"
        for col in cols_l:
            if col in ("seconds", "notebook"):
                continue
            if col.endswith("loss"):  # same seeds, one thread each: the same numbers
                assert float(a[col]) == pytest.approx(float(b[col]), rel=1e-5), col
            else:
                assert a[col] == b[col], col
    runs = sorted(p.parent.parent.name for p in (tmp_path / "dask").glob("00*/run/summary.json"))
    assert len(runs) == 2
    assert not (tmp_path / "local" / "trackio").exists()  # no tracker asked for there
    tracked = _trackio_losses(tmp_path / "dask" / "trackio", runs)
    for name in runs:
        recs = [json.loads(x) for x in (tmp_path / "dask" / name / "run" / "metrics.jsonl").read_text().splitlines()]
        own = [(r["step"], r["loss"]) for r in recs if r["kind"] == "train" and r.get("loss") is not None]
        assert tracked[name] == own and len(own) == SHARED["max_steps"], name


def _one_line_error(capsys, argv, *needles):
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err
    return err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bad_engine_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    sweep = _write(tmp_path, {"template": "train_run.ipynb", "parameters": SHARED, "grid": {"peft": ["lora"]}})
    out = tmp_path / "out"
    _one_line_error(capsys, ["sweep", sweep, "--engine", "ray", "-o", out], "unknown sweep engine 'ray'", "dask, local")
    in_file = _write(tmp_path, {"template": "train_run.ipynb", "engine": "spark", "grid": {"peft": ["lora"]}}, "e.yaml")
    _one_line_error(capsys, ["sweep", in_file, "-o", out], "unknown sweep engine 'spark'")
    _one_line_error(capsys, ["sweep", sweep, "--tracker", "wandb", "-o", out],
                    "--tracker: unknown tracker 'wandb'; known: mlflow, tensorboard, trackio")
    in_file = _write(tmp_path, {"template": "train_run.ipynb", "parameters": {**SHARED, "tracker": "mlflow"},
                                "grid": {"peft": ["lora"]}}, "t.yaml")
    import importlib.util

    if importlib.util.find_spec("mlflow") is None:
        _one_line_error(capsys, ["sweep", in_file, "-o", out], "t.yaml: tracker 'mlflow' needs the mlflow package",
                        "pip install mlflow")
    _one_line_error(capsys, ["sweep", sweep, "--address", "tcp://127.0.0.1:1", "-o", out],
                    "--address needs --engine dask")
    started = time.monotonic()
    _one_line_error(capsys, ["sweep", sweep, "--engine", "dask", "--address", f"tcp://127.0.0.1:{_free_port()}",
                             "-o", out], "cannot reach the Dask scheduler at tcp://127.0.0.1:")
    assert time.monotonic() - started < 30
    # A configuration no worker can run (a GPU on a CPU-only local cluster) would wait forever: refused up front.
    gpu = _write(tmp_path, {"template": "train_run.ipynb", "parameters": SHARED, "engine": "dask", "workers": 1,
                            "list": [{"peft": "lora", "resources": {"GPU": 1}}]}, "gpu.yaml")
    from workbench.sweeps.engines import visible_gpus

    if not visible_gpus():
        _one_line_error(capsys, ["sweep", gpu, "-o", out], "configuration 0 needs resources CPU=1, GPU=1", "no worker")
    assert not out.exists()


def test_dask_not_installed_names_the_pip_command(tmp_path):
    sweep = _write(tmp_path, {"template": "train_run.ipynb", "parameters": SHARED, "grid": {"peft": ["lora"]}})
    # A real ImportError: the interpreter is told the package is absent (sys.modules entry None).
    code = ("import sys; sys.modules['distributed'] = None\n"
            "from workbench.cli.main import main\n"
            f"sys.exit(main(['sweep', {sweep!r}, '--engine', 'dask', '-o', {str(tmp_path / 'out')!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        "workbench sweep: error: engine 'dask' needs Dask distributed: pip install \"dask[distributed]\""]
    assert not (tmp_path / "out").exists()
