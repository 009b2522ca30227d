"""Experiment trackers: an optional listener that mirrors a run to trackio (default; local,
no account), TensorBoard or MLflow — every metrics record (on-policy rounds included), the
resolved config and the samples. One tracker run per workbench run; a resumed run continues
its tracker run where the tracker allows it (trackio: same name, resume="allow").

Where the files go (nothing in $HOME, nothing on the network):
- trackio: `$TRACKIO_DIR` if set (sweeps set it to `<sweep folder>/trackio`, so every trial
  lands in one dashboard), else `<run_dir>/trackio`; `tracker.json` in the run directory
  records the place. Spaces/server settings are ignored here: this listener only logs
  locally (`TRACKIO_DIR=<that folder> trackio show --project lm-workbench` to browse).
- tensorboard: `<run_dir>/tensorboard` (event files; `tensorboard --logdir …`).
- mlflow: `$MLFLOW_TRACKING_URI` if set, else a file store at `<run_dir>/mlruns`.

The engine attaches it on the main process only (RANK 0), right after the run is created.
"""
from __future__ import annotations

import atexit
import contextlib
import importlib.util
import io
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from . import distributed
from .errors import UnknownNameError, WorkbenchError
from .runs.records import Event, Kind, MetricsRecord

log = logging.getLogger("workbench")

TRACKERS = ("trackio", "tensorboard", "mlflow")
# tracker -> (module that must import, pip package that provides it)
_NEEDS = {"trackio": ("trackio", "trackio"), "tensorboard": ("tensorboard", "tensorboard"),
          "mlflow": ("mlflow", "mlflow")}
PROJECT = "lm-workbench"
INFO_FILE = "tracker.json"


def check_tracker(name: str) -> None:
    """'' (none) or a known tracker whose package is installed; else one line."""
    if not name:
        return
    if name not in TRACKERS:
        raise UnknownNameError("tracker", str(name), TRACKERS)
    module, pip = _NEEDS[name]
    if importlib.util.find_spec(module) is None:
        raise WorkbenchError(f"tracker {name!r} needs the {pip} package: pip install {pip}")


def attach_tracker(run, name: str, project: str = PROJECT) -> "TrackerListener | None":
    """Add a tracker listener to `run` (a runs.Run) on the main process; returns it (or None).
    Under multi-process training only rank 0 mirrors the run (one tracker run, not N)."""
    if not name or not distributed.is_main():
        return None
    listener = TrackerListener(name, run.path, run.config, project)
    run.listeners.append(listener)
    atexit.register(listener.close)  # a failed or killed session still closes its tracker run
    return listener


def tracker_run_name(run_dir: Path) -> str:
    """The run directory's name; sweeps name every run folder `run`, so its parent's then."""
    run_dir = Path(run_dir).resolve()
    return run_dir.parent.name if run_dir.name == "run" else run_dir.name


def _numbers(values: dict) -> dict[str, float]:
    return {k: float(v) for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


class TrackerListener:
    """A run listener (callable on each MetricsRecord) writing to one tracker run."""

    def __init__(self, tracker: str, run_dir: str | Path, config: dict, project: str = PROJECT):
        check_tracker(tracker)
        self.tracker, self.run_dir, self.project = tracker, Path(run_dir), project
        self.name = tracker_run_name(self.run_dir)
        self._samples: list[MetricsRecord] = []
        self._closed = False
        self.location = getattr(self, f"_open_{tracker}")(config)
        info = {"tracker": tracker, "project": project, "run": self.name, "location": str(self.location)}
        (self.run_dir / INFO_FILE).write_text(json.dumps(info, indent=2))

    # ---- opening, per tracker ---------------------------------------------------------
    def _open_trackio(self, config: dict) -> Path:
        import trackio

        folder = Path(os.environ.get("TRACKIO_DIR") or self.run_dir / "trackio").resolve()
        _point_trackio_at(folder)
        # Local only: a Space or server configured in the environment is not used from here.
        hidden = {k: os.environ.pop(k) for k in ("TRACKIO_SPACE_ID", "TRACKIO_SERVER_URL") if k in os.environ}
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # its banner would interleave with step lines
                self._run = trackio.init(project=self.project, name=self.name, config=_jsonable(config),
                                         resume="allow", embed=False, auto_log_cpu=False, auto_log_gpu=False)
        finally:
            os.environ.update(hidden)
        from trackio.sqlite_storage import SQLiteStorage

        db = SQLiteStorage.get_project_db_path(self.project)
        if db.parent != folder:  # a trackio whose layout _point_trackio_at does not know
            log.warning("workbench: trackio %s writes to %s, not %s", trackio.__version__, db.parent, folder)
        return db.parent

    def _open_tensorboard(self, config: dict) -> Path:
        from torch.utils.tensorboard import SummaryWriter

        path = self.run_dir / "tensorboard"
        self._run = SummaryWriter(log_dir=str(path))
        self._run.add_text("config", "```\n" + json.dumps(_jsonable(config), indent=2) + "\n```", 0)
        return path

    def _open_mlflow(self, config: dict) -> str:
        import mlflow

        uri = os.environ.get("MLFLOW_TRACKING_URI") or (self.run_dir / "mlruns").resolve().as_uri()
        self._client = mlflow.MlflowClient(tracking_uri=uri)
        exp = self._client.get_experiment_by_name(self.project)
        exp_id = exp.experiment_id if exp else self._client.create_experiment(self.project)
        self._run = self._client.create_run(exp_id, run_name=self.name)
        self._client.log_dict(self._run.info.run_id, _jsonable(config), "config.json")
        return uri

    # ---- records ------------------------------------------------------------------------
    def __call__(self, rec: MetricsRecord) -> None:
        if self._closed:
            return
        try:
            self._record(rec)
        except Exception as e:  # a tracker failure must never stop training
            log.warning("workbench: tracker %s: %s: %s", self.tracker, type(e).__name__, e)

    def _record(self, rec: MetricsRecord) -> None:
        if rec.kind is Kind.SAMPLE:
            self._samples.append(rec)
            return
        self._flush_samples()
        if rec.kind is Kind.EVENT:
            if rec.event == Event.END:
                self.close()
                return
            if rec.event != Event.ROUND:
                return
        values = _numbers({k: v for k, v in rec.values.items() if k not in ("event", "epoch")})
        if values:
            self._log(values, rec.step)

    def _log(self, values: dict[str, float], step: int) -> None:
        if self.tracker == "trackio":
            self._run.log(values, step=step)
        elif self.tracker == "tensorboard":
            for k, v in values.items():
                self._run.add_scalar(k, v, step)
        else:
            for k, v in values.items():
                self._client.log_metric(self._run.info.run_id, k, v, step=step)

    def _flush_samples(self) -> None:
        if not self._samples:
            return
        recs, self._samples = self._samples, []
        cols = ["step"] + sorted({k for r in recs for k in r.values if isinstance(r.values[k], (str, int, float))})
        rows = [[r.step] + [r.values.get(c) for c in cols[1:]] for r in recs]
        step = recs[-1].step
        if self.tracker == "trackio":
            import trackio

            self._run.log({"samples": trackio.Table(data=rows, columns=cols)}, step=step)
        elif self.tracker == "tensorboard":
            table = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n" + "".join(
                "| " + " | ".join(str(x).replace("|", "\\|").replace("\n", " ") for x in row) + " |\n"
                for row in rows)
            self._run.add_text("samples", table, step)
        else:
            self._client.log_table(self._run.info.run_id, {c: [row[i] for row in rows] for i, c in enumerate(cols)},
                                   f"samples/step-{step}.json")

    def close(self) -> None:
        if self._closed:
            return
        try:
            self._flush_samples()
        finally:
            self._closed = True
            with contextlib.redirect_stdout(io.StringIO()):
                if self.tracker == "trackio":
                    from trackio import context_vars

                    self._run.finish()
                    if context_vars.current_run.get() is self._run:  # else trackio's atexit finishes it again
                        context_vars.current_run.set(None)
                elif self.tracker == "tensorboard":
                    self._run.close()
                else:
                    self._client.set_terminated(self._run.info.run_id)


def _point_trackio_at(folder: Path) -> None:
    """trackio reads TRACKIO_DIR once, when first imported — and TRL imports it with its
    trainers, before any run exists — then binds the folder (and its media/ and artifacts/
    subfolders) into several modules. Rebind them to this run's folder (trackio 0.43's layout;
    the tracker test reads the files back through trackio's own API to catch a change)."""
    import importlib

    dirs = {"TRACKIO_DIR": folder, "MEDIA_DIR": folder / "media", "ARTIFACTS_DIR": folder / "artifacts"}
    for name in ("trackio.utils", "trackio", "trackio.sqlite_storage", "trackio.run", "trackio.table",
                 "trackio.media.media", "trackio.bucket_storage", "trackio.registry_bucket"):
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        for attr, value in dirs.items():
            if hasattr(mod, attr):
                setattr(mod, attr, value)
    folder.mkdir(parents=True, exist_ok=True)


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))
