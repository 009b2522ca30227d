"""How many torch threads this process should use.

Two torch processes on the same cores, each with as many threads as there are cores, slow
each other down by ~40× (measured on 2 cores: OpenMP threads spin and get descheduled).
Workbench starts such neighbours itself — sweep workers, `workbench check --jobs`, notebook
kernels under a test runner — so every process sizes its pool to its share of the cores:

1. `OMP_NUM_THREADS`, if set, is the user's decision and wins;
2. else the cores this process may run on (CPU affinity, and a cgroup CPU quota, which
   `os.cpu_count()` ignores inside containers), divided by `WORKBENCH_WORKERS` (set by
   whoever starts several workbench processes side by side; default 1).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

WORKERS_ENV = "WORKBENCH_WORKERS"
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def cgroup_quota(path: Path = CPU_MAX) -> int | None:
    """Whole cores allowed by a cgroup v2 `cpu.max` quota ("max 100000" = no quota)."""
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, math.floor(int(quota) / int(period)))


def available_cores() -> int:
    """Cores this process can actually use: affinity mask and cgroup quota, not the host's count."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    quota = cgroup_quota()
    return max(1, min(cores, quota) if quota else cores)


def _positive_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def planned_threads(workers: int | None = None) -> int:
    """Threads for one of `workers` processes sharing this machine (see the module doc)."""
    explicit = _positive_int("OMP_NUM_THREADS")
    if explicit:
        return explicit
    workers = workers or _positive_int(WORKERS_ENV) or 1
    return max(1, available_cores() // workers)


def worker_env(workers: int) -> dict[str, str]:
    """Environment for one of `workers` child processes (kernels, sweep workers): each gets
    its share of the cores, unless the user fixed OMP_NUM_THREADS for everything."""
    threads = planned_threads(workers)
    return {WORKERS_ENV: str(workers), **{k: str(threads) for k in THREAD_ENV_VARS}}


def size_torch_threads() -> int:
    """Set torch's intra-op pool to `planned_threads()`; returns the number. Cheap to call
    again; torch is imported only if it already was (the CLI's `--help` stays fast)."""
    import sys

    n = planned_threads()
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
