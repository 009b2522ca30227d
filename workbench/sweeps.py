"""Sweeps: a grid (or list) of parameter sets over a notebook template, executed in
parallel worker processes, then one HTML comparison report.

A sweep file (YAML):

    template: train_run.ipynb        # looked up beside the YAML file, then in templates/
    workers: 2                       # parallel notebooks (default: min(2, CPU cores))
    parameters: {model: tiny-llama, max_steps: 20}   # shared by every configuration
    grid:                            # cartesian product of these ...
      learning_rate: [1.0e-3, 3.0e-4]
      peft: [lora, full]
    # list: [{peft: lora}, {peft: full, learning_rate: 1.0e-5}]   # ... and/or these sets
"""
from __future__ import annotations

import itertools
import os
import re
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import read_yaml_mapping
from .errors import UnknownNameError, WorkbenchError
from .threads import available_cores, worker_env

SWEEP_KEYS = ("template", "workers", "parameters", "grid", "list", "output", "timeout")
TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


@dataclass
class SweepSpec:
    template: Path
    configs: list[dict[str, Any]]           # the varying parameters of each configuration
    parameters: dict[str, Any] = field(default_factory=dict)   # shared parameters
    workers: int = 0
    timeout: int | None = None
    source: Path | None = None

    @property
    def varied(self) -> list[str]:
        keys: list[str] = []
        for c in self.configs:
            keys += [k for k in c if k not in keys]
        return keys


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
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise WorkbenchError(f"{where}: grid.{key} must be a non-empty list of values")
    configs = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())] if grid else []
    for i, item in enumerate(listed):
        if not isinstance(item, dict):
            raise WorkbenchError(f"{where}: list[{i}] must be a mapping of parameters")
        configs.append(dict(item))
    if not configs:
        raise WorkbenchError(f"{where}: no configurations (give a 'grid' or a 'list')")
    from .notebooks import check_parameters

    for c in configs:
        check_parameters(template, {**shared, **c})
    workers = data.get("workers") or 0
    if not isinstance(workers, int) or workers < 0:
        raise WorkbenchError(f"{where}: workers must be a positive integer, got {workers!r}")
    return SweepSpec(template, configs, dict(shared), workers, data.get("timeout"), source)


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


def _run_one(template: str, out_dir: str, params: dict, timeout: int | None, env: dict[str, str]):
    # In a worker process: the kernel it starts inherits this, so its torch keeps to its share of the cores.
    os.environ.update(env)
    from .notebooks import execute

    try:
        r = execute(template, out_dir, params, html=False, timeout=timeout)
    except WorkbenchError as e:  # e.g. a parameter the template rejects
        return None, None, 0.0, str(e)
    return str(r.notebook), r.parameters.get("run_dir"), r.seconds, r.error


def run_sweep(spec: SweepSpec, out_dir: str | Path, workers: int | None = None,
              progress: bool = True) -> list[SweepResult]:
    """Execute every configuration (failures are recorded, the others go on)."""
    from tqdm.auto import tqdm

    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise WorkbenchError(f"workers must be a positive integer, got {workers!r}")
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WorkbenchError(f"cannot create the sweep folder {out_dir} ({e.strerror or e})") from None
    n_workers = workers or spec.workers or min(2, available_cores())
    env = worker_env(n_workers)
    jobs = {}
    results: list[SweepResult] = []
    with ProcessPoolExecutor(max_workers=n_workers) as pool:
        for i, cfg in enumerate(spec.configs):
            d = out_dir / _slug(i, cfg)
            params = {**spec.parameters, **cfg}
            fut = pool.submit(_run_one, str(spec.template), str(d), params, spec.timeout, env)
            jobs[fut] = (i, cfg, d)
        bar = tqdm(as_completed(jobs), total=len(jobs), desc="sweep", unit="config", disable=not progress)
        for fut in bar:
            i, cfg, d = jobs[fut]
            try:
                nb, run_dir, secs, err = fut.result()
            except Exception as e:  # a crashed worker fails one configuration, not the sweep
                nb, run_dir, secs, err = None, None, 0.0, f"{type(e).__name__}: {e}"
            results.append(SweepResult(i, label_of(cfg), cfg, d, Path(nb) if nb else None,
                                       Path(run_dir) if run_dir else None, secs, err))
            if err:
                bar.write(f"config {i} ({label_of(cfg)}) failed: {err}")
    return sorted(results, key=lambda r: r.index)


def sweep_report(spec: SweepSpec, results: list[SweepResult], path: str | Path) -> Path:
    """One HTML page: a table of final metrics per configuration + overlaid curves."""
    import html

    import pandas as pd

    from .reports import (
        LOSS_KEYS,
        PREFERENCE_KEYS,
        ReportSection,
        final_values,
        metrics_grid,
        present_keys,
        write_html_report,
    )
    from .runs import open_run

    rows, curves = [], {}
    for r in results:
        row: dict[str, Any] = {"#": r.index, **r.parameters}
        recs, summary = [], {}
        if r.run_dir and (Path(r.run_dir) / "config.json").is_file():
            info = open_run(r.run_dir)
            recs, summary = info.records(), info.summary
            curves[r.label] = recs
        row["status"] = "failed" if r.error else summary.get("status", "done")
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
    if keys:
        sections.append(ReportSection("Curves", "", [metrics_grid([], keys, runs=curves)]))
    title = f"Sweep: {spec.source.name if spec.source else spec.template.name}"
    return write_html_report(path, title, sections)
