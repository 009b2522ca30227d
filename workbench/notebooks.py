"""Execute notebooks headless with papermill and export them to HTML with nbconvert.

Used by `workbench run`, `workbench sweep`, `workbench check` and the notebook tests. The
kernel inherits WORKBENCH_HEADLESS=1, so the widgets render static figures that stay in the
executed notebook instead of live widgets nobody is watching. The HTML export renders every
plotly figure, including ones a cell left only as plotly JSON (a bare `fig` as the last
expression, `fig.show()`), which nbconvert alone would drop.
"""
from __future__ import annotations

import json
import os
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import WorkbenchError

HEADLESS_ENV = "WORKBENCH_HEADLESS"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def skip_iri_grammars() -> None:
    """Call first in a process the workbench owns that reads or executes notebooks (the CLI, a
    check worker, a sweep worker, the test runner). nbformat validates with jsonschema, whose
    import builds ~35 Earley parsers from `rfc3987_syntax` (~0.85 s a process here,
    python-jsonschema/jsonschema#1428) only to offer the "iri"/"iri-reference" format checks,
    which no notebook schema uses. Marking that package absent before jsonschema is imported
    makes jsonschema skip those two checks, as it does where the package is not installed.
    Kernels the workbench runs headless (WORKBENCH_HEADLESS=1) do this on `import workbench`:
    plotly imports nbformat to show a figure. Nothing changes once jsonschema is imported."""
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)


@dataclass
class CellFailure:
    """Where and how an executed notebook stopped."""
    cell_index: int | None      # index in the executed notebook (papermill's injected cell included)
    execution_count: int | None
    source: str
    ename: str
    evalue: str
    traceback: list[str]        # plain text lines (ANSI colours removed)


@dataclass
class NotebookRun:
    notebook: Path              # the executed copy
    html: Path | None           # its HTML export (None when not asked for or execution failed)
    parameters: dict[str, Any]
    seconds: float
    error: str | None = None    # "ExceptionName: message" of the failing cell, None on success
    failure: CellFailure | None = None  # details of the failing (or timed-out) cell
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


# ipykernel warns on every start that loopback TCP is unencrypted; in headless runs it is noise
# in every log (papermill, sweeps, `workbench check`, course grading).
QUIET_KERNEL_ARGS = ("--IPKernelApp.log_level=ERROR",)


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
    check_declared(path, parameters, known)


def check_declared(path, parameters, known, where: str | None = None) -> None:
    """Every given parameter is declared by the notebook's parameters cell; `where` names the
    source of the parameters (a profile, a --params file) in the error."""
    src = f" from {where}" if where else ""
    if parameters and not known:
        raise WorkbenchError(f"{Path(path).name}: no cell tagged 'parameters', so it takes no parameters "
                             f"(got {', '.join(sorted(parameters))}{src})")
    for name in parameters:
        if name not in known:
            from .errors import UnknownNameError

            raise UnknownNameError(f"parameter of {Path(path).name}" + (f" (from {where})" if where else ""),
                                   name, known)
        _check_kind(path, name, parameters[name], known[name], src)


def _check_kind(path, name: str, value, default_text: str, src: str) -> None:
    """A word where the notebook's default is a number or a switch (`-p max_steps abc`) fails in
    the kernel's cell 3 after its start-up; say so now. Text that reads as a number passes
    (a Python caller's `"1e-3"`), and so does anything for other defaults: notebooks
    legitimately take several types there."""
    import ast

    try:
        default = ast.literal_eval(default_text)
    except (ValueError, SyntaxError):
        return
    if not isinstance(value, str) or default is None:
        return
    if isinstance(default, bool):
        expected = "true or false"
    elif isinstance(default, (int, float)):
        try:
            float(value)
            return
        except ValueError:
            expected = "a number"
    else:
        return
    raise WorkbenchError(f"parameter {name} of {Path(path).name}{src}: expected {expected} like its default "
                         f"{default_text}, got {value!r}")


def _declared_parameters(path: Path) -> dict[str, Any]:
    """Like `notebook_parameters`, but a notebook without a parameters cell declares none."""
    import papermill as pm

    return {name: p["default"] for name, p in (pm.inspect_notebook(str(path)) or {}).items()}


DEFAULT_KERNEL = "python3"  # this environment's own kernel (ipykernel's spec name)


def _named_kernel(path: Path) -> str | None:
    """The kernel a notebook's metadata names. A notebook written by nbformat or some editors
    names none, and papermill then stops with "No kernel name found in notebook"; JupyterLab
    would open it with the default kernel, so it runs with ours."""
    import nbformat

    try:
        return nbformat.read(str(path), as_version=4).metadata.get("kernelspec", {}).get("name") or None
    except Exception:  # an unreadable notebook: papermill's own error says why
        return None


def _callers_path(name: str, value, kernel_cwd: Path):
    """The kernel runs in the notebook's folder, so `-p dataset rows.csv` typed beside rows.csv
    was looked up beside the notebook ("no such file"). A relative path that exists from here and
    not from there, or a relative `run_dir` (created by the run), is made absolute. Only what reads
    as a path (a `/` or a file suffix; `./my-model`): a bare word stays a name (`tiny-llama` is the
    built-in model even beside a folder of that name)."""
    if not isinstance(value, str) or not value or Path(value).expanduser().is_absolute():
        return value
    here = Path(value).expanduser()
    if name == "run_dir":
        return str(here.resolve())
    if ("/" in value or here.suffix) and here.exists() and not (kernel_cwd / value).exists():
        return str(here.resolve())
    return value


def execute(notebook: str | Path, out_dir: str | Path, parameters: dict[str, Any] | None = None,
            *, html: bool = True, timeout: int | None = None, kernel: str | None = None,
            raise_on_error: bool = False, total_timeout: float | None = None,
            threads: int | None = None) -> NotebookRun:
    """Execute `notebook` with `parameters` into `out_dir/<name>.ipynb` (+ `.html`).

    If the notebook declares a `run_dir` parameter and none is given, its run goes to
    `out_dir/run`, so the executed notebook and the run it trained sit together.
    A failing cell is reported in `NotebookRun.error` (the partly executed notebook is
    still written) unless `raise_on_error`. `timeout` bounds each cell, `total_timeout`
    all cells together (seconds, kernel start-up not counted); running past either stops
    the kernel and sets `NotebookRun.timed_out`. `threads` sets OMP_NUM_THREADS (and
    MKL/OpenBLAS) for the kernel, which torch reads for its thread pool, so parallel
    kernels share the cores.
    """
    import papermill as pm
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    notebook = _existing(notebook)
    parameters = {k: _callers_path(k, v, notebook.parent) for k, v in (parameters or {}).items()}
    declared = _declared_parameters(notebook) if parameters else None
    if parameters:
        check_declared(notebook, parameters, declared)
    out_dir = Path(out_dir)
    if (out_dir / notebook.name).resolve() == notebook.resolve():  # the executed copy would replace the source
        raise WorkbenchError(f"the output folder {out_dir} holds the notebook itself ({notebook.name}); "
                             f"name another folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WorkbenchError(f"cannot create the output folder {out_dir} ({e.strerror or e})") from None
    if declared is None:
        declared = _declared_parameters(notebook)
    if "run_dir" in declared and "run_dir" not in parameters:
        parameters["run_dir"] = str((out_dir / "run").resolve())
    out_nb = out_dir / notebook.name
    kernel = kernel or _named_kernel(notebook) or DEFAULT_KERNEL
    os.environ[HEADLESS_ENV] = "1"  # inherited by the kernel papermill starts
    engine_kwargs: dict[str, Any] = {"extra_arguments": list(QUIET_KERNEL_ARGS)}
    start = time.perf_counter()
    if total_timeout is not None:
        started: list[float] = []  # the clock starts with the first cell, once the kernel is up

        def _remaining(cell) -> int:
            if not started:
                started.append(time.monotonic())
            left = max(1, int(started[0] + total_timeout - time.monotonic() + 0.999))
            return min(left, timeout) if timeout else left

        engine_kwargs["timeout_func"] = _remaining
    error = failure = None
    timed_out = False
    with _thread_env(threads):
        try:
            _execute_starting_kernel_twice(
                lambda: pm.execute_notebook(str(notebook), str(out_nb), parameters=parameters,
                                            cwd=str(notebook.parent), kernel_name=kernel, progress_bar=False,
                                            execution_timeout=timeout, log_output=False, **engine_kwargs))
        except pm.PapermillExecutionError as e:
            error = f"{e.ename}: {e.evalue} (cell {e.exec_count})"
            failure = CellFailure(e.cell_index, e.exec_count, e.source, e.ename, e.evalue,
                                  _plain_lines(e.traceback))
            if raise_on_error:
                raise WorkbenchError(f"{notebook.name}: {error}; see {out_nb}") from e
        except CellTimeoutError as e:
            timed_out = True
            limit = f"{total_timeout:g} s for the notebook" if total_timeout is not None else f"{timeout} s per cell"
            error = f"timed out ({limit})"
            failure = _running_cell(out_nb, "CellTimeoutError", str(e).strip().splitlines()[0] if str(e) else error)
            if raise_on_error:
                raise WorkbenchError(f"{notebook.name}: {error}; see {out_nb}") from e
        except DeadKernelError as e:
            error = f"DeadKernelError: {e}"
            failure = _running_cell(out_nb, "DeadKernelError", str(e))
            if raise_on_error:
                raise WorkbenchError(f"{notebook.name}: {error}; see {out_nb}") from e
    seconds = time.perf_counter() - start
    html_path = export_html(out_nb) if html and error is None else None
    return NotebookRun(out_nb, html_path, parameters, seconds, error, failure, timed_out)


KERNEL_START_FAILED = "Kernel died before replying to kernel_info"


def _execute_starting_kernel_twice(run):
    """`run()`, once more if its kernel died before it answered: jupyter_client picks free ports
    for a kernel and the kernel binds them later, so a kernel started at the same moment by
    another process (parallel sweep trials, test workers) can take one first ("Address already
    in use"; jupyter_client issue 487). No cell has run then, so a second start loses nothing."""
    try:
        return run()
    except RuntimeError as e:
        if KERNEL_START_FAILED not in str(e):
            raise
    return run()


@contextmanager
def _thread_env(threads: int | None):
    """Set the thread-count variables for kernels started inside the block, then restore them."""
    if threads is None:
        yield
        return
    saved = {k: os.environ.get(k) for k in THREAD_ENV_VARS}
    os.environ.update({k: str(max(1, int(threads))) for k in THREAD_ENV_VARS})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _plain_lines(traceback: list[str] | None) -> list[str]:
    return [line for chunk in traceback or [] for line in _ANSI.sub("", chunk).splitlines()]


def _running_cell(out_nb: Path, ename: str, evalue: str) -> CellFailure:
    """The cell execution stopped in, read back from the notebook papermill wrote."""
    import nbformat

    try:
        nb = nbformat.read(str(out_nb), as_version=4)
    except Exception:  # nothing written yet (kernel never started)
        return CellFailure(None, None, "", ename, evalue, [])
    i = stopped_cell(nb)
    if i is None:
        return CellFailure(None, None, "", ename, evalue, [])
    return CellFailure(i, nb.cells[i].get("execution_count"), nb.cells[i].source, ename, evalue, [])


def stopped_cell(nb) -> int | None:
    """Index of the cell where a papermill execution stopped: the one marked with the
    exception, else the last one started (a timeout or a dead kernel)."""
    started = None
    for i, cell in enumerate(nb.cells):
        pm = cell.get("metadata", {}).get("papermill", {})
        if pm.get("exception"):
            return i
        if cell.cell_type == "code" and pm.get("start_time"):
            started = i
    return started


def export_html(notebook: str | Path) -> Path:
    """Write `<notebook>.html` beside the notebook (outputs as executed, no re-run).

    Every plotly figure is rendered: an output holding only plotly JSON (which nbconvert's
    HTML exporter would drop) gets an HTML rendering, with plotly.js inlined once so the
    page opens offline. The notebook file itself is left as executed."""
    import nbformat
    from nbconvert import HTMLExporter

    notebook = _existing(notebook)
    nb = nbformat.read(str(notebook), as_version=4)
    add_figure_html(nb)
    body, _ = HTMLExporter().from_notebook_node(nb)
    out = notebook.with_suffix(".html")
    _write_atomic(out, body)
    return out


def add_figure_html(nb) -> int:
    """Give every output that carries plotly JSON but no HTML a `text/html` rendering of the
    figure (in place). Returns how many figures were converted."""
    converted = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data") or {}
            if PLOTLY_MIME not in data or "text/html" in data:
                continue
            data["text/html"] = _figure_html(data[PLOTLY_MIME], include_plotlyjs=converted == 0)
            converted += 1
    return converted


def _figure_html(spec: dict, include_plotlyjs: bool) -> str:
    import plotly.io as pio

    spec = dict(spec)
    config = spec.pop("config", None) or {}
    fig = pio.from_json(json.dumps(spec), skip_invalid=True)
    return pio.to_html(fig, full_html=False, include_plotlyjs=include_plotlyjs, config=config)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


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
