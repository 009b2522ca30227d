"""Sweeps: a grid (or list) of parameter sets over a notebook template, executed in
parallel worker processes, then one HTML comparison report.

A sweep file (YAML):

    template: train_run.ipynb        # looked up beside the YAML file, then in templates/
    workers: 2                       # parallel notebooks (default: min(2, CPU cores))
    parameters: {model: tiny-llama, max_steps: 20}   # shared by every configuration
    grid:                            # cartesian product of these ...
      learning_rate: [1.0e-3, 3.0e-4]
      peft: [lora, full]
    # list: [{peft: lora}, {peft: full, learning_rate: 1.0e-5, resources: {CPU: 2}}]   # ... and/or these sets
    engine: local                    # or dask (a LocalCluster here, or `address: tcp://host:8786`)
    resources: {CPU: 1, GPU: 0}      # what each configuration needs (dask places it on a worker that has it)
    # search: {metric: eval_loss, direction: minimize, n_trials: 8, space: {...}}   # an Optuna study instead
                                                                                   # of grid/list (search.py)
See docs/sweeps.md.
"""
from __future__ import annotations

import itertools
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import differing_keys, read_yaml_mapping
from ..errors import UnknownNameError, WorkbenchError
from ..threads import available_cores

DEFAULT_RESOURCES = {"CPU": 1, "GPU": 0}
SWEEP_KEYS = ("template", "workers", "parameters", "grid", "list", "output", "timeout", "engine", "address",
              "resources", "search")
TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"


@dataclass
class SweepSpec:
    template: Path
    configs: list[dict[str, Any]]           # the varying parameters of each configuration
    parameters: dict[str, Any] = field(default_factory=dict)   # shared parameters
    workers: int = 0
    timeout: int | None = None
    source: Path | None = None
    engine: str = "local"
    address: str | None = None
    resources: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_RESOURCES))  # shared default
    config_resources: list[dict[str, float]] = field(default_factory=list)  # per configuration (overrides)
    search: Any = None                      # a search.SearchSpec: an Optuna study instead of grid/list

    @property
    def varied(self) -> list[str]:
        keys: list[str] = []
        for c in self.configs:
            keys += [k for k in c if k not in keys]
        return keys

    def resources_of(self, index: int) -> dict[str, float]:
        own = self.config_resources[index] if index < len(self.config_resources) else {}
        return {**self.resources, **own}


@dataclass
class SweepResult:
    index: int
    label: str
    parameters: dict[str, Any]
    out_dir: Path
    notebook: Path | None
    run_dir: Path | None
    seconds: float
    error: str | None
    status: str | None = None               # set by a search ("pruned"); else read from the run


def load_sweep(path: str | Path) -> SweepSpec:
    path = Path(path)
    data = read_yaml_mapping(path, "sweep file", "template/grid/list keys")
    return sweep_from_dict(data, base=path.parent, source=path)


def sweep_from_dict(data: dict, base: Path = Path("."), source: Path | None = None) -> SweepSpec:
    where = str(source or "sweep")
    for key in data:
        if key not in SWEEP_KEYS:
            raise UnknownNameError(f"sweep key in {where}", key, SWEEP_KEYS)
    if "template" not in data:
        raise WorkbenchError(f"{where}: missing 'template' (a notebook in templates/)")
    template = _find_template(str(data["template"]), base, where)
    shared = data.get("parameters") or {}
    grid = data.get("grid") or {}
    listed = data.get("list") or []
    if not isinstance(shared, dict) or not isinstance(grid, dict) or not isinstance(listed, list):
        raise WorkbenchError(f"{where}: 'parameters' and 'grid' must be mappings, 'list' a list")
    from .engines import check_engine, check_resources

    engine = check_engine(str(data.get("engine") or "local"))
    address = data.get("address")
    if address is not None and not isinstance(address, str):
        raise WorkbenchError(f"{where}: address must be a string like tcp://host:8786, got {address!r}")
    resources = {**DEFAULT_RESOURCES, **check_resources(data.get("resources"), where)}
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise WorkbenchError(f"{where}: grid.{key} must be a non-empty list of values")
    configs = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())] if grid else []
    own_resources: list[dict[str, float]] = [{} for _ in configs]
    for i, item in enumerate(listed):
        if not isinstance(item, dict):
            raise WorkbenchError(f"{where}: list[{i}] must be a mapping of parameters")
        item = dict(item)
        own_resources.append(check_resources(item.pop("resources", None), f"{where}: list[{i}]"))
        configs.append(item)
    seen: dict[str, int] = {}
    for i, c in enumerate(configs):  # the same notebook twice costs a run and shows one result twice
        key = json.dumps(c, sort_keys=True, default=str)
        if key in seen:
            raise WorkbenchError(f"{where}: configurations {seen[key]} and {i} are the same ({label_of(c)}); "
                                 "list each value once")
        seen[key] = i
    from ..notebooks import check_parameters

    search = None
    if data.get("search") is not None:
        if configs:
            raise WorkbenchError(f"{where}: give either 'search' or 'grid'/'list', not both "
                                 "(search.enqueue lists parameter sets to try first)")
        from .search import parse_search

        search = parse_search(data["search"], template, shared, where)
    elif not configs:
        raise WorkbenchError(f"{where}: no configurations (give a 'grid', a 'list' or a 'search')")
    for c in configs:
        check_parameters(template, {**shared, **c})
    if not configs:
        check_parameters(template, shared)
    check_trackers([shared, *configs], where)
    workers = data.get("workers") or 0
    if not isinstance(workers, int) or workers < 0:
        raise WorkbenchError(f"{where}: workers must be a positive integer, got {workers!r}")
    return SweepSpec(template, configs, dict(shared), workers, data.get("timeout"), source, engine, address,
                     resources, own_resources, search)


def check_trackers(param_sets: list[dict], where: str) -> None:
    """A `tracker` parameter is checked here (known, installed), not in every notebook."""
    from ..tracking import check_tracker

    for params in param_sets:
        try:
            check_tracker(params.get("tracker") or "")
        except WorkbenchError as e:
            raise WorkbenchError(f"{where}: {e}") from None


def _find_template(name: str, base: Path, where: str) -> Path:
    for cand in (base / name, TEMPLATES_DIR / name, Path(name)):
        if cand.is_file():
            return cand.resolve()
    known = sorted(p.name for p in TEMPLATES_DIR.glob("*.ipynb"))
    raise WorkbenchError(f"{where}: template {name!r} not found beside the sweep file or in "
                         f"templates/ (known: {', '.join(known) or 'none'})")


def label_of(params: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in params.items()) or "default"


def _slug(index: int, params: dict[str, Any]) -> str:
    return f"{index:03d}-" + re.sub(r"[^A-Za-z0-9._=-]+", "_", label_of(params))[:80]


def run_sweep(spec: SweepSpec, out_dir: str | Path, workers: int | None = None, progress: bool = True,
              engine: str | None = None, address: str | None = None) -> list[SweepResult]:
    """Execute every configuration (failures are recorded, the others go on) on the engine
    (`engine`/`address` override the sweep file's); a search block runs its Optuna study."""
    from tqdm.auto import tqdm

    from .engines import check_engine, open_engine

    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise WorkbenchError(f"workers must be a positive integer, got {workers!r}")
    engine_name = check_engine(engine or spec.engine)
    address = address or spec.address
    n_workers = workers or spec.workers or min(2, available_cores())
    out_dir = Path(out_dir)
    eng = open_engine(engine_name, n_workers, address)   # an unreachable cluster fails before anything is written
    from ..runs.lock import RunLock

    lock = RunLock(out_dir, what="sweep folder")
    try:
        eng.check([spec.resources_of(i) for i in range(len(spec.configs))] if spec.configs else [spec.resources])
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise WorkbenchError(f"cannot create the sweep folder {out_dir} ({e.strerror or e})") from None
        lock.acquire()  # a second sweep into the same folder: one line
        # A tracker (parameters.tracker) keeps every configuration's runs in one place: the sweep folder.
        extra_env = {} if os.environ.get("TRACKIO_DIR") else {"TRACKIO_DIR": str((out_dir / "trackio").resolve())}
        if spec.search is not None:
            from .search import run_search

            return run_search(spec, out_dir, eng, n_workers, extra_env, progress)
        from ..notebooks import notebook_parameters

        jobs = {}
        results: list[SweepResult] = []
        resumable = "resume" in notebook_parameters(spec.template)
        folders = [(i, cfg, out_dir / _slug(i, cfg), {**spec.parameters, **cfg}) for i, cfg in enumerate(spec.configs)]
        earlier = [_earlier_result(i, cfg, d, spec.template, params) for i, cfg, d, params in folders]  # all first
        for (i, cfg, d, params), done_before in zip(folders, earlier):
            if done_before is not None:  # completed by an earlier invocation of this sweep: kept as it is
                results.append(done_before)
                continue
            if resumable and (d / "run" / "config.json").is_file():  # an interrupted run goes on from its checkpoint
                params["resume"] = True
            fut = eng.submit(str(spec.template), str(d), params, spec.timeout, spec.resources_of(i), extra_env)
            jobs[fut] = (i, cfg, d)
        if results and progress:
            print(f"{len(results)} of {len(spec.configs)} configurations completed earlier in {out_dir}: kept",
                  file=sys.stderr)
        bar = tqdm(total=len(jobs), desc=f"sweep ({engine_name})", unit="config", disable=not (progress and jobs))
        pending = dict(jobs)
        while pending:
            done = [f for f in pending if f.done()]
            if not done:
                time.sleep(POLL_S)
                continue
            for fut in done:
                i, cfg, d = pending.pop(fut)
                nb, run_dir, secs, err = result_of(fut)
                results.append(SweepResult(i, label_of(cfg), cfg, d, Path(nb) if nb else None,
                                           Path(run_dir) if run_dir else None, secs, err))
                bar.update(1)
                if err:
                    bar.write(f"config {i} ({label_of(cfg)}) failed: {err}")
        bar.close()
        return sorted(results, key=lambda r: r.index)
    finally:
        eng.close(cancel=sys.exc_info()[0] is not None)  # Ctrl-C / an error: drop what has not started
        lock.release()


POLL_S = 0.25
# Parameters the sweep sets per folder, not part of what a configuration is.
_PER_FOLDER = ("run_dir", "resume")


def _earlier_result(index: int, cfg: dict, folder: Path, template: Path, params: dict) -> SweepResult | None:
    """A configuration's folder from an earlier invocation of the sweep into the same output:
    its result if the run completed (nothing is executed again, so the notebook and run stay as
    they are), else None (it runs, resuming the run where the template can). A folder holding
    another configuration (other parameters) is one line: re-executing would overwrite it."""
    from ..runs import open_run

    nb = folder / template.name
    if not nb.is_file():
        return None
    try:
        stored = json.loads(nb.read_text(encoding="utf-8"))["metadata"]["papermill"]["parameters"]
    except (OSError, ValueError, KeyError, TypeError):
        stored = None
    if stored is not None:
        mine = {k: v for k, v in json.loads(json.dumps(params, default=str)).items() if k not in _PER_FOLDER}
        theirs = {k: v for k, v in stored.items() if k not in _PER_FOLDER}
        if mine != theirs:
            differ = differing_keys(mine, theirs)
            raise WorkbenchError(f"{folder} holds another sweep's configuration {index} (parameters differ: "
                                 f"{', '.join(differ)}); pick another -o/--output folder")
    run = folder / "run"
    if not (run / "config.json").is_file():
        return None
    try:
        summary = open_run(run).summary
    except WorkbenchError:
        return None
    if summary.get("status") != "completed":
        return None
    return SweepResult(index, label_of(cfg), cfg, folder, nb, run, float(summary.get("runtime_s") or 0.0), None)


def result_of(fut) -> tuple:
    """(notebook, run_dir, seconds, error) of a finished future; a crashed worker fails one
    configuration, not the sweep."""
    try:
        return fut.result()
    except Exception as e:
        return None, None, 0.0, f"{type(e).__name__}: {e}"


def sweep_report(spec: SweepSpec, results: list[SweepResult], path: str | Path) -> Path:
    """One HTML page: a table of final metrics per configuration + overlaid curves (+ the
    study's history and parameter importances for a search)."""
    import html

    import pandas as pd

    from ..reports import (
        LOSS_KEYS,
        PREFERENCE_KEYS,
        ReportSection,
        final_values,
        metrics_grid,
        present_keys,
        write_html_report,
    )
    from ..runs import open_run

    rows, curves = [], {}
    for r in results:
        row: dict[str, Any] = {"#": r.index, **r.parameters}
        recs, summary = [], {}
        if r.run_dir and (Path(r.run_dir) / "config.json").is_file():
            info = open_run(r.run_dir)
            recs, summary = info.records(), info.summary
            curves[r.label] = recs
        row["status"] = r.status or ("failed" if r.error else summary.get("status", "done"))
        row.update(final_values(recs, summary))
        row["seconds"] = round(r.seconds, 1)
        row["error"] = r.error or ""
        row["notebook"] = str(r.notebook.relative_to(Path(path).parent)) if r.notebook else ""
        rows.append(row)
    table = pd.DataFrame(rows).fillna("").to_html(index=False, escape=True, classes="wb-sweep")
    for row in rows:  # the executed notebooks, linked (paths are relative to the report)
        if row["notebook"]:
            nb = html.escape(row["notebook"])
            table = table.replace(f"<td>{nb}</td>", f"<td><a href='{nb}'>{nb}</a></td>")
    all_recs = [x for recs in curves.values() for x in recs]
    keys = present_keys(all_recs, LOSS_KEYS + PREFERENCE_KEYS)
    n_failed = sum(1 for r in results if r.error)
    head = (f"<p>template <code>{html.escape(spec.template.name)}</code>, {len(results)} configurations"
            f" ({n_failed} failed); shared parameters <code>{html.escape(label_of(spec.parameters))}</code></p>")
    sections = [ReportSection("Final metrics", head + table)]
    if spec.search is not None:
        from .search import study_sections

        sections += study_sections(spec, Path(path).parent)
    if keys:
        sections.append(ReportSection("Curves", "", [metrics_grid([], keys, runs=curves)]))
    title = f"Sweep: {spec.source.name if spec.source else spec.template.name}"
    return write_html_report(path, title, sections)
