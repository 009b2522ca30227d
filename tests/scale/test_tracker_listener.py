"""The experiment-tracker listener: a run mirrored to trackio (local files inside the run, no
network) reads back through trackio's own API with the run's loss values, config and
samples; TensorBoard likewise where installed; bad tracker input is one line, exit 2."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from workbench.cli.main import main
from workbench.config import TrainConfig

TINY = ["--model", "tiny-llama", "--max-steps", "3", "--eval-steps", "2", "--eval-rows", "4",
        "--sample-prompts", "1", "--sample-max-new-tokens", "4", "--quiet"]
_connects: list = []
_watching = [False]


def _audit(event, args):
    if _watching[0] and event == "socket.connect":
        _connects.append(args[1])


sys.addaudithook(_audit)  # hooks cannot be removed; it records only while _watching


def _losses(run_dir) -> list[tuple[int, float]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows if r["kind"] == "train" and r.get("loss") is not None]


def _read_trackio(folder, run: str) -> dict:
    """Logs and config of one trackio run, read in a fresh process through trackio's own API."""
    code = ("import json; from trackio.sqlite_storage import SQLiteStorage as S\n"
            f"print(json.dumps({{'logs': S.get_logs('lm-workbench', {run!r}),"
            f" 'config': S.get_run_config('lm-workbench', {run!r})}}, default=str))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "TRACKIO_DIR": str(folder)})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_trackio_mirror_reads_back_through_trackio(tmp_path, monkeypatch):
    monkeypatch.delenv("TRACKIO_DIR", raising=False)
    monkeypatch.setenv("TRACKIO_SPACE_ID", "someone/not-to-be-contacted")  # ignored: local only
    run_dir = tmp_path / "tracked"
    _watching[0] = True
    try:
        assert main(["train", *TINY, "--tracker", "trackio", "--run-dir", str(run_dir)]) == 0
    finally:
        _watching[0] = False
    remote = [a for a in _connects if not (isinstance(a, tuple) and a and str(a[0]) in ("127.0.0.1", "::1",
                                                                                          "localhost"))]
    assert remote == [], f"tracker tried the network: {remote}"
    info = json.loads((run_dir / "tracker.json").read_text())
    assert info["tracker"] == "trackio" and info["run"] == "tracked"
    assert info["location"] == str((run_dir / "trackio").resolve())  # inside the run, not $HOME
    back = _read_trackio(info["location"], "tracked")
    logged = [(x["step"], x["loss"]) for x in back["logs"] if "loss" in x]
    assert logged == _losses(run_dir) and len(logged) == 3
    assert any("eval_loss" in x for x in back["logs"])
    samples = [x["samples"] for x in back["logs"] if "samples" in x]
    assert samples and samples[0]["_type"] == "trackio.table" and samples[0]["_value"][0]["prompt"]
    assert back["config"]["model"] == "tiny-llama" and back["config"]["tracker"] == "trackio"


def test_onpolicy_rounds_reach_trackio(tmp_path, monkeypatch):
    """The listener alone, fed the records an on-policy run writes (round events between
    train steps, samples, the end event): one trackio run holding every number."""
    from workbench.runs.records import Event, Kind, MetricsRecord
    from workbench.tracking import TrackerListener

    folder = tmp_path / "sweep-trackio"
    monkeypatch.setenv("TRACKIO_DIR", str(folder))  # as a sweep sets it: every run in one place
    run_dir = tmp_path / "007-lr=0.001" / "run"
    run_dir.mkdir(parents=True)
    listener = TrackerListener("trackio", run_dir, {"method": "online_dpo", "max_steps": 4})
    recs = [MetricsRecord(0, Kind.EVENT, {"event": Event.START, "max_steps": 4}),
            MetricsRecord(0, Kind.EVENT, {"event": Event.ROUND, "round": 0, "reward_mean": 0.25, "pairs": 3}),
            MetricsRecord(1, Kind.TRAIN, {"loss": 0.69, "learning_rate": 1e-3}),
            MetricsRecord(2, Kind.TRAIN, {"loss": 0.61, "learning_rate": 1e-3}),
            MetricsRecord(2, Kind.SAMPLE, {"prompt": "2+2=", "completion": "4"}),
            MetricsRecord(2, Kind.EVENT, {"event": Event.ROUND, "round": 1, "reward_mean": 0.5, "pairs": 2}),
            MetricsRecord(3, Kind.TRAIN, {"loss": float("nan")}),  # not a number a tracker can plot: left out
            MetricsRecord(4, Kind.TRAIN, {"loss": 0.52}),
            MetricsRecord(4, Kind.EVENT, {"event": Event.END, "status": "completed"})]
    for rec in recs:
        listener(rec)
    assert listener._closed
    info = json.loads((run_dir / "tracker.json").read_text())
    assert info == {"tracker": "trackio", "project": "lm-workbench", "run": "007-lr=0.001",
                    "location": str(folder.resolve())}
    back = _read_trackio(folder, "007-lr=0.001")
    assert [(x["step"], x["loss"]) for x in back["logs"] if "loss" in x] == [(1, 0.69), (2, 0.61), (4, 0.52)]
    assert [(x["step"], x["round"], x["reward_mean"]) for x in back["logs"] if "reward_mean" in x] == \
        [(0, 0, 0.25), (2, 1, 0.5)]
    samples = [x["samples"]["_value"] for x in back["logs"] if "samples" in x]
    assert samples == [[{"step": 2, "completion": "4", "prompt": "2+2="}]]
    assert back["config"]["method"] == "online_dpo"


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                    reason="tensorboard is not installed (pip install tensorboard)")
def test_tensorboard_mirror_reads_back(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "tb"
    assert main(["train", *TINY, "--tracker", "tensorboard", "--run-dir", str(run_dir)]) == 0
    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    assert [(e.step, pytest.approx(e.value)) for e in acc.Scalars("loss")] == _losses(run_dir)


def test_bad_tracker_is_one_line_and_writes_nothing(tmp_path, capsys):
    run_dir = tmp_path / "never"
    cases = [("wandb", "unknown tracker 'wandb'; known: mlflow, tensorboard, trackio")]
    for name in ("tensorboard", "mlflow"):
        if importlib.util.find_spec(name) is None:
            cases.append((name, f"tracker {name!r} needs the {name} package: pip install {name}"))
    for name, needle in cases:
        assert main(["train", "--model", "tiny-llama", "--tracker", name, "--run-dir", str(run_dir)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.splitlines() == [f"workbench train: error: {needle}"]
    assert not run_dir.exists()


def test_tracker_reaches_every_front_end():
    """The dataclass field drives the CLI flag, YAML/--set, the sweep template and the Train form."""
    from workbench.cli.main import build_parser
    from workbench.notebooks import notebook_parameters
    from workbench.sweeps import TEMPLATES_DIR

    assert build_parser().parse_args(["train", "--tracker", "trackio"]).tracker == "trackio"
    assert TrainConfig.from_dict({"tracker": "trackio"}).tracker == "trackio"
    assert notebook_parameters(TEMPLATES_DIR / "train_run.ipynb")["tracker"] in ('""', "''")  # source text
    # The app's Train tab: its "settings" accordion is generated from TrainConfig, so the field's
    # `choices` make a dropdown there with no widget code of its own; its value reaches the run's config.
    from widgets import Workbench
    from widgets.app import TABS

    app = Workbench(model="tiny-llama", headless=False)
    dropdown = app.settings.inputs["tracker"]
    assert list(dropdown.options) == ["", "trackio", "tensorboard", "mlflow"] and dropdown.value == ""

    def descendants(w):
        yield w
        for c in getattr(w, "children", ()):
            yield from descendants(c)

    assert any(w is dropdown for w in descendants(app.tabs.children[TABS.index("Train")]))
    assert app.config().tracker == ""
    dropdown.value = "trackio"
    assert app.config().tracker == "trackio"
