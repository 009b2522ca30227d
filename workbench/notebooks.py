"""Execute notebooks headless with papermill and export them to HTML with nbconvert.

Used by `workbench run`, `workbench sweep` and the notebook tests. The kernel inherits
WORKBENCH_HEADLESS=1, so the widgets render static figures that stay in the executed
notebook instead of live widgets nobody is watching.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import WorkbenchError

HEADLESS_ENV = "WORKBENCH_HEADLESS"


@dataclass
class NotebookRun:
    notebook: Path              # the executed copy
    html: Path | None           # its HTML export (None when not asked for or execution failed)
    parameters: dict[str, Any]
    seconds: float
    error: str | None = None    # "ExceptionName: message" of the failing cell, None on success

    @property
    def ok(self) -> bool:
        return self.error is None


def notebook_parameters(path: str | Path) -> dict[str, Any]:
    """The names and defaults declared in the notebook's `parameters` cell."""
    import papermill as pm

    path = _existing(path)
    params = pm.inspect_notebook(str(path))
    if not params:
        raise WorkbenchError(f"{path}: no cell tagged 'parameters'")
    return {name: p["default"] for name, p in params.items()}


def check_parameters(path: str | Path, parameters: dict[str, Any]) -> None:
    known = notebook_parameters(path)
    for name in parameters:
        if name not in known:
            from .errors import UnknownNameError

            raise UnknownNameError(f"parameter of {Path(path).name}", name, known)


def execute(notebook: str | Path, out_dir: str | Path, parameters: dict[str, Any] | None = None,
            *, html: bool = True, timeout: int | None = None, kernel: str | None = None,
            raise_on_error: bool = False) -> NotebookRun:
    """Execute `notebook` with `parameters` into `out_dir/<name>.ipynb` (+ `.html`).

    If the notebook declares a `run_dir` parameter and none is given, its run goes to
    `out_dir/run`, so the executed notebook and the run it trained sit together.
    A failing cell is reported in `NotebookRun.error` (the partly executed notebook is
    still written) unless `raise_on_error`.
    """
    import papermill as pm

    notebook = _existing(notebook)
    parameters = dict(parameters or {})
    check_parameters(notebook, parameters)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WorkbenchError(f"cannot create the output folder {out_dir} ({e.strerror or e})") from None
    if "run_dir" in notebook_parameters(notebook) and "run_dir" not in parameters:
        parameters["run_dir"] = str((out_dir / "run").resolve())
    out_nb = out_dir / notebook.name
    os.environ[HEADLESS_ENV] = "1"  # inherited by the kernel papermill starts
    start = time.perf_counter()
    error = None
    try:
        pm.execute_notebook(str(notebook), str(out_nb), parameters=parameters,
                            cwd=str(notebook.parent), kernel_name=kernel, progress_bar=False,
                            execution_timeout=timeout, log_output=False)
    except pm.PapermillExecutionError as e:
        error = f"{e.ename}: {e.evalue} (cell {e.exec_count})"
        if raise_on_error:
            raise WorkbenchError(f"{notebook.name}: {error}; see {out_nb}") from e
    seconds = time.perf_counter() - start
    html_path = export_html(out_nb) if html and error is None else None
    return NotebookRun(out_nb, html_path, parameters, seconds, error)


def export_html(notebook: str | Path) -> Path:
    """Write `<notebook>.html` beside the notebook (outputs as executed, no re-run)."""
    import nbformat
    from nbconvert import HTMLExporter

    notebook = _existing(notebook)
    body, _ = HTMLExporter().from_notebook_node(nbformat.read(str(notebook), as_version=4))
    out = notebook.with_suffix(".html")
    out.write_text(body)
    return out


def _existing(path: str | Path) -> Path:
    """An existing, readable Jupyter notebook, or one line saying what it is instead."""
    path = Path(path)
    if path.exists() and not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file"
        raise WorkbenchError(f"notebook {path} is {kind}")
    if not path.is_file():
        raise WorkbenchError(f"notebook {path} does not exist")
    if path.suffix != ".ipynb":
        raise WorkbenchError(f"{path}: expected a .ipynb notebook")
    _check_notebook(path)
    return path.resolve()


def _check_notebook(path: Path) -> None:
    import json

    import nbformat

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise WorkbenchError(f"{path}: not a notebook (not UTF-8 text)") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise WorkbenchError(f"{path}: not a notebook (not valid JSON: {e.msg} at line {e.lineno})") from None
    if not isinstance(data, dict) or "cells" not in data or "nbformat" not in data:
        raise WorkbenchError(f"{path}: not a Jupyter notebook (a JSON object with 'cells' and 'nbformat' expected)")
    try:
        nbformat.reads(text, as_version=4)
    except Exception as e:  # nbformat raises validation, key and attribute errors here
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise WorkbenchError(f"{path}: not a valid notebook ({first})") from None
