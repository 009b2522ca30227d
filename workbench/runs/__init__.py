"""Runs: the run directory's layout and readers (`store`), the one metrics record
(`records`), the exclusive lock, and `Run`, which owns a run's whole life. The lowest
layer of the library: it imports nothing from training, methods or analysis."""
from .records import Event, Kind, Listener, MetricsRecord
from .store import RunInfo, RunStore, default_run_dir, list_runs, load_run_model, open_run, runs_root


def __getattr__(name):  # Run pulls in transformers (its callback) only when used
    if name in ("Run", "RunResult"):
        from . import run
        return getattr(run, name)
    raise AttributeError(name)


__all__ = ["Event", "Kind", "Listener", "MetricsRecord", "Run", "RunInfo", "RunResult", "RunStore",
           "default_run_dir", "list_runs", "load_run_model", "open_run", "runs_root"]
