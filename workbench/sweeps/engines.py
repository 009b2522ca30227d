"""Where a sweep's notebooks run: `local` (a ProcessPoolExecutor on this machine) or `dask`
(Dask distributed: a LocalCluster started here, or an existing cluster at `address`).

Both engines hand back futures with `.done()` and `.result()`, so the grid loop and the
Optuna ask/tell loop poll them the same way. Dask rather than Ray: a pure-Python pip
install, a LocalCluster for tests and laptops, resource-aware placement through worker
`resources=`, and no separate runtime to install or keep alive (see docs/sweeps.md).
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from ..errors import UnknownNameError, WorkbenchError
from ..threads import THREAD_ENV_VARS, available_cores, worker_env

ENGINES = ("local", "dask")
CONNECT_TIMEOUT_S = 5          # an unreachable --address fails after this many seconds
DASK_PIP = 'pip install "dask[distributed]"'


def check_engine(name: str) -> str:
    if name not in ENGINES:
        raise UnknownNameError("sweep engine", str(name), ENGINES)
    return name


def check_resources(res: Any, where: str) -> dict[str, float]:
    """{NAME: amount >= 0}; e.g. {CPU: 1, GPU: 0}."""
    if res is None:
        return {}
    if not isinstance(res, dict):
        raise WorkbenchError(f"{where}: resources must be a mapping like {{CPU: 1, GPU: 0}}, got {res!r}")
    out = {}
    for k, v in res.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise WorkbenchError(f"{where}: resources.{k} must be a number >= 0, got {v!r}")
        out[str(k)] = v
    return out


def run_one(template: str, out_dir: str, params: dict, timeout: int | None, env: dict[str, str]):
    """One configuration, in a worker process (pool or Dask worker). Returns
    (notebook, run_dir, seconds, error)."""
    # The kernel papermill starts inherits this, so its torch keeps to its share of the cores.
    os.environ.update(env)
    from ..notebooks import execute, skip_iri_grammars

    skip_iri_grammars()

    try:
        r = execute(template, out_dir, params, html=False, timeout=timeout)
    except WorkbenchError as e:  # e.g. a parameter the template rejects
        return None, None, 0.0, str(e)
    return str(r.notebook), r.parameters.get("run_dir"), r.seconds, r.error


class LocalEngine:
    """Today's path: `workers` processes on this machine; resources are not needed."""
    name = "local"

    def __init__(self, workers: int):
        self.workers = workers
        self.env = worker_env(workers)
        self._pool = ProcessPoolExecutor(max_workers=workers)

    def check(self, resources: list[dict[str, float]]) -> None:
        pass

    def submit(self, template: str, out_dir: str, params: dict, timeout, resources: dict, extra_env: dict):
        return self._pool.submit(run_one, template, out_dir, params, timeout, {**self.env, **extra_env})

    def close(self, cancel: bool = False) -> None:
        if not cancel:
            self._pool.shutdown(wait=True)
            return
        # Ctrl-C / an error: the pool has already handed each worker its next configuration
        # (cancel_futures cannot take those back), and a worker whose notebook was interrupted
        # would start it, so the sweep would sit out a whole new configuration before exiting.
        # The workers go instead; their kernels follow their parent out (ipykernel's parent
        # poller), and an interrupted run resumes when the sweep is run again.
        procs = list((getattr(self._pool, "_processes", None) or {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.join(timeout=10)


def visible_gpus() -> list[str]:
    """GPU ids this machine may use: CUDA_VISIBLE_DEVICES if set, else `nvidia-smi -L`
    (no torch import in the coordinating process)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in (x.strip() for x in env.split(",")) if g and g != "-1"]
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def _gpu_plugin(gpus: list[str]):
    from distributed.diagnostics.plugin import WorkerPlugin

    class OneGpuPerWorker(WorkerPlugin):
        """LocalCluster workers are named 0..n-1: worker i sees GPU i (mod the GPU count),
        and the notebook kernels it starts inherit that."""
        name = "workbench-one-gpu-per-worker"

        def __init__(self, ids):
            self.ids = list(ids)

        def setup(self, worker):
            try:
                i = int(worker.name)
            except (TypeError, ValueError):
                return
            os.environ["CUDA_VISIBLE_DEVICES"] = self.ids[i % len(self.ids)]

    return OneGpuPerWorker(gpus)


class DaskEngine:
    """A Dask client: on a LocalCluster started here (`address` None) or on a running cluster."""
    name = "dask"

    def __init__(self, workers: int, address: str | None = None):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise WorkbenchError(f"engine 'dask' needs Dask distributed: {DASK_PIP}") from None
        self.address, self.cluster, self.workers = address, None, workers
        if address:
            try:
                self.client = Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
            except (OSError, TimeoutError) as e:
                raise WorkbenchError(f"cannot reach the Dask scheduler at {address} within {CONNECT_TIMEOUT_S} s "
                                     f"({type(e).__name__}); start one with `dask scheduler`") from None
            except ValueError as e:  # a malformed address
                raise WorkbenchError(f"--address {address!r}: {e}") from None
            infos = self.client.scheduler_info(n_workers=-1).get("workers", {}).values()
            self.worker_resources = [dict(w.get("resources") or {}) for w in infos]
            if not self.worker_resources:
                self.client.close()
                raise WorkbenchError(f"no Dask workers are connected to {address}; start some with "
                                     f"`dask worker {address} --nthreads 1 --resources \"CPU=1\"`")
            self.env = {}   # thread counts come from each configuration's CPU resource (see env_for)
        else:
            gpus = visible_gpus()
            cpus = max(1, available_cores() // workers)
            res = {"CPU": cpus, **({"GPU": 1} if gpus else {})}
            self.env = worker_env(workers)
            # processes=True: each worker is its own process (torch state, GIL); no dashboard port taken, so
            # no statistical profiler either (it samples every 10 ms: ~half a worker's idle CPU, measured).
            import dask

            with dask.config.set({"distributed.worker.profile.enabled": False}):
                self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, resources=res,
                                            dashboard_address=None, silence_logs=logging.ERROR, env=self.env)
            self.client = Client(self.cluster, set_as_default=False)
            if gpus:
                self.client.register_plugin(_gpu_plugin(gpus))
            self.worker_resources = [dict(res) for _ in range(workers)]

    def check(self, resources: list[dict[str, float]]) -> None:
        """Every configuration fits on some worker, else it would wait forever: one line now."""
        for i, need in enumerate(resources):
            need = {k: v for k, v in need.items() if v}
            if not any(all(w.get(k, 0) >= v for k, v in need.items()) for w in self.worker_resources):
                have = "; ".join(sorted({",".join(f"{k}={v}" for k, v in w.items()) or "none"
                                         for w in self.worker_resources}))
                where = f"the cluster at {self.address}" if self.address else "the local Dask cluster"
                raise WorkbenchError(f"configuration {i} needs resources "
                                     f"{', '.join(f'{k}={v}' for k, v in need.items())} but no worker of {where} "
                                     f"has them (workers have: {have})")

    def env_for(self, resources: dict) -> dict[str, str]:
        if not self.address:
            return self.env
        threads = str(max(1, int(resources.get("CPU", 1) or 1)))
        return {k: threads for k in THREAD_ENV_VARS}

    def submit(self, template: str, out_dir: str, params: dict, timeout, resources: dict, extra_env: dict):
        need = {k: v for k, v in resources.items() if v}  # a worker that lacks GPU entirely still fits GPU: 0
        return self.client.submit(run_one, template, out_dir, params, timeout,
                                  {**self.env_for(resources), **extra_env}, resources=need or None, pure=False,
                                  retries=0)

    def close(self, cancel: bool = False) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


def open_engine(name: str, workers: int, address: str | None = None):
    check_engine(name)
    if name == "local":
        if address:
            raise WorkbenchError("--address needs --engine dask (the local engine runs on this machine)")
        return LocalEngine(workers)
    return DaskEngine(workers, address)
