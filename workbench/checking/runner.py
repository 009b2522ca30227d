"""Plan a check (find notebooks, resolve and validate every parameter before anything
runs), then execute the plan in parallel worker processes that share the cores."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import WorkbenchError
from ..signals import sigterm_as_interrupt
from .compare import MODES
from .discover import OUTPUT_MARKER, find_notebooks
from .profiles import check_common_overrides, load_params_file, resolve_parameters

STATUSES = ("passed", "failed", "timed out")
# How long past --timeout a worker may take (kernel start-up, export) before it is killed.
KILL_GRACE_S = 120


def available_cores() -> int:
    """Cores this process may use; an OMP_NUM_THREADS set by the caller caps it (a CI job or
    a shared machine that asked for fewer threads gets no more)."""
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        cores = max(1, os.cpu_count() or 1)
    try:
        cap = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        cap = 0
    return min(cores, cap) if cap > 0 else cores


def threads_per_job(jobs: int, cores: int | None = None) -> int:
    """Threads each worker's kernel gets so `jobs` kernels don't oversubscribe the cores."""
    return max(1, (cores or available_cores()) // max(1, jobs))


@dataclass
class PlannedNotebook:
    path: Path                 # the notebook as found
    name: str                  # how reports name it (path relative to the working folder)
    profile: str | None        # the metadata profile used (None: the notebook's own defaults)
    parameters: dict[str, Any]
    out_dir: Path              # its executed copy, HTML export and runs go here


@dataclass
class CheckPlan:
    notebooks: list[PlannedNotebook]
    out_dir: Path
    jobs: int
    threads: int
    timeout: float | None
    compare: str = "lax"
    sanitize_patterns: dict[str, str] = field(default_factory=dict)


@dataclass
class NotebookResult:
    name: str
    path: Path
    status: str                       # one of STATUSES
    seconds: float
    parameters: dict[str, Any]
    profile: str | None
    executed: Path | None = None      # the executed notebook (partial when it failed)
    html: Path | None = None          # its HTML export
    failure: dict[str, Any] | None = None  # kind, cell, source, message, lines

    @property
    def ok(self) -> bool:
        return self.status == "passed"


@dataclass
class CheckResult:
    results: list[NotebookResult]
    out_dir: Path
    seconds: float
    jobs: int
    threads: int

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def counts(self) -> dict[str, int]:
        return {s: sum(r.status == s for r in self.results) for s in STATUSES}


def plan_check(paths: Iterable[str | Path], *, profile: str | None = None, params_file: str | Path | None = None,
               out_dir: str | Path | None = None, jobs: int = 1, timeout: float | None = None,
               compare: str = "lax", sanitize_with: str | Path | None = None,
               parameters: dict[str, Any] | None = None) -> CheckPlan:
    """Everything `workbench check` needs, validated up front: raises WorkbenchError (exit 2)
    when no notebook is found, a profile is unknown or a parameter is not declared.

    `parameters` act like top-level keys of the `params_file` (and win over them): each
    applies to every notebook that declares it."""
    from ..notebooks import _declared_parameters, _existing

    if jobs < 1:
        raise WorkbenchError(f"--jobs must be at least 1, got {jobs}")
    if timeout is not None and timeout <= 0:
        raise WorkbenchError(f"--timeout must be a positive number of seconds, got {timeout:g}")
    if compare not in MODES:
        raise WorkbenchError(f"unknown comparison mode {compare!r}; known: {', '.join(MODES)}")
    patterns = {}
    if sanitize_with is not None:
        from .compare import sanitize_patterns

        if not Path(sanitize_with).is_file():
            raise WorkbenchError(f"sanitize file {sanitize_with} does not exist")
        patterns = sanitize_patterns(sanitize_with)
    overrides = load_params_file(params_file)
    overrides.common.update(parameters or {})
    notebooks = find_notebooks(paths)
    out_dir = Path(out_dir) if out_dir else Path("runs") / f"check-{time.strftime('%Y%m%d-%H%M%S')}"
    if out_dir.exists() and not out_dir.is_dir():
        raise WorkbenchError(f"output folder {out_dir} is a file")
    declared_by = {}
    for nb in notebooks:
        _existing(nb)  # a clear line for a broken notebook
        declared_by[nb] = _declared_parameters(nb)
    check_common_overrides(overrides, declared_by)
    planned, used_slots = [], set()
    common = Path(os.path.commonpath([str(nb.resolve().parent) for nb in notebooks]))
    for nb, declared in declared_by.items():
        used, params = resolve_parameters(nb, declared, profile, overrides)
        name = _display_name(nb)
        slot = _slot(str(nb.resolve().relative_to(common)), used_slots)
        if "runs_dir" in declared and "runs_dir" not in params:  # keep CI runs inside the check's folder
            params["runs_dir"] = str((out_dir / slot / "runs").resolve())
        planned.append(PlannedNotebook(nb, name, used, params, out_dir / slot))
    jobs = min(jobs, len(planned))
    return CheckPlan(planned, out_dir, jobs, threads_per_job(jobs), timeout, compare, patterns)


def run_plan(plan: CheckPlan, on_result: Callable[[NotebookResult], None] | None = None) -> CheckResult:
    """Execute every planned notebook, `plan.jobs` at a time, each in a worker process whose
    kernel gets `plan.threads` threads. `on_result` is called (from worker threads, one at a
    time) as each notebook finishes."""
    try:
        plan.out_dir.mkdir(parents=True, exist_ok=True)
        (plan.out_dir / OUTPUT_MARKER).write_text("executed notebooks written by `workbench check`\n")
    except OSError as e:
        raise WorkbenchError(f"cannot create the output folder {plan.out_dir} ({e.strerror or e})") from None
    start = time.perf_counter()
    lock = threading.Lock()
    procs: set[subprocess.Popen] = set()

    def one(item: PlannedNotebook) -> NotebookResult:
        result = _run_worker(item, plan, procs, lock)
        if on_result is not None:
            with lock:
                on_result(result)
        return result

    pool = ThreadPoolExecutor(max_workers=plan.jobs, thread_name_prefix="wb-check")
    try:
        with sigterm_as_interrupt():  # the workers, each in its own session, die with us
            results = list(pool.map(one, plan.notebooks))
    except BaseException:
        with lock:
            for p in procs:
                _kill(p)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return CheckResult(results, plan.out_dir, time.perf_counter() - start, plan.jobs, plan.threads)


def check_notebooks(paths: Iterable[str | Path], **kwargs) -> CheckResult:
    """Plan and run a check (see `plan_check` for the arguments; `on_result` goes to `run_plan`)."""
    on_result = kwargs.pop("on_result", None)
    return run_plan(plan_check(paths, **kwargs), on_result)


def _run_worker(item: PlannedNotebook, plan: CheckPlan, procs: set, lock: threading.Lock) -> NotebookResult:
    from .worker import write_json_atomic

    item.out_dir.mkdir(parents=True, exist_ok=True)
    spec_path, result_path = item.out_dir / ".check-spec.json", item.out_dir / ".check-result.json"
    result_path.unlink(missing_ok=True)
    write_json_atomic(spec_path, {
        "notebook": str(item.path.resolve()), "out_dir": str(item.out_dir.resolve()),
        "parameters": item.parameters, "timeout": plan.timeout, "threads": plan.threads,
        "compare": plan.compare, "patterns": plan.sanitize_patterns, "result": str(result_path.resolve())})
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env.update({k: str(plan.threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
    env["WORKBENCH_HEADLESS"] = "1"
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    start = time.perf_counter()
    log_path = item.out_dir / "worker.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "workbench.checking.worker", str(spec_path.resolve())],
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        with lock:
            procs.add(proc)
        killed = False
        try:
            proc.wait(timeout=None if plan.timeout is None else plan.timeout + KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            killed = True
            _kill(proc)
        finally:
            with lock:
                procs.discard(proc)
    seconds = time.perf_counter() - start
    base = dict(name=item.name, path=item.path, parameters=item.parameters, profile=item.profile)
    if result_path.is_file():
        data = json.loads(result_path.read_text())
        base["parameters"] = data.get("parameters", item.parameters)  # with the run_dir execute added
        return NotebookResult(status=data["status"], seconds=seconds,
                              executed=Path(data["executed"]) if data.get("executed") else None,
                              html=Path(data["html"]) if data.get("html") else None,
                              failure=data.get("failure"), **base)
    tail = log_path.read_text(errors="replace").splitlines()[-12:]
    executed = item.out_dir / item.path.name
    if killed:
        failure = {"kind": "timeout", "cell": None, "source": "",
                   "message": f"timed out: worker killed after {seconds:.0f} s", "lines": tail}
        return NotebookResult(status="timed out", seconds=seconds, failure=failure,
                              executed=executed if executed.is_file() else None, **base)
    failure = {"kind": "crash", "cell": None, "source": "",
               "message": f"the worker process exited with status {proc.returncode} without a result",
               "lines": tail}
    return NotebookResult(status="failed", seconds=seconds, failure=failure,
                          executed=executed if executed.is_file() else None, **base)


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def _display_name(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _slot(name: str, used: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", name.removesuffix(".ipynb").replace(os.sep, "__")).strip("_") or "nb"
    slot, i = base, 2
    while slot in used:
        slot, i = f"{base}-{i}", i + 1
    used.add(slot)
    return slot
