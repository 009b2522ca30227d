"""The same 4-configuration sweep (templates/train_run.ipynb on tiny-llama, 2 workers) on the
local process pool and on a local 2-worker Dask cluster, side by side in one invocation
(machines are noisy: read the ratio, and the load average printed with it).

Where Dask's extra time goes is measured apart: cluster start-up (scheduler + 2 nanny/worker
processes), scheduling (round trip of an empty task), serialization (pickling one
configuration's task) and shut-down; and during each sweep the CPU seconds of the notebook
kernels vs the engine's own processes (pool / nannies + workers) vs this process. Each
configuration's notebook time (kernel start-up, imports, training) is the same work under both engines.

    .venv/bin/python benchmarks/bench_sweep_engines.py [--repeats 1] [--max-steps 2] [--out FILE.md]
"""
from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import pickle  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import yaml  # noqa: E402


def _noop():
    return None


def _import_workbench() -> float:
    """What a fresh worker pays before its first configuration: importing the sweep runner."""
    import time as _t

    t = _t.perf_counter()
    import workbench.notebooks  # noqa: F401
    import workbench.sweeps.engines  # noqa: F401

    return _t.perf_counter() - t


def sweep_file(folder: Path, max_steps: int) -> Path:
    path = folder / "bench_sweep.yaml"
    path.write_text(yaml.safe_dump({
        "template": "train_run.ipynb", "workers": 2,
        "parameters": {"model": "tiny-llama", "max_steps": max_steps, "eval_rows": 0, "sample_prompts": 0},
        "grid": {"learning_rate": [1e-3, 1e-4], "peft": ["lora", "full"]}}))
    return path


class CpuWatch:
    """CPU seconds (user + sys) of this process and of every process it starts, sampled every
    0.2 s, split into notebook kernels (the training: the same work under both engines) and
    the rest (pool processes, Dask nannies and workers, papermill). psutil is optional."""

    def __init__(self):
        import psutil

        self.me, self.seen, self.kind = psutil.Process(), {}, {}
        self.t0 = self._cpu(self.me)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _cpu(p) -> float:
        t = p.cpu_times()
        return t.user + t.system

    def _run(self):
        import psutil

        while not self._stop.wait(0.2):
            for p in self.me.children(recursive=True):
                try:
                    self.seen[p.pid] = self._cpu(p)
                    if p.pid not in self.kind:
                        self.kind[p.pid] = "kernel" if "ipykernel" in " ".join(p.cmdline()) else "other"
                except psutil.Error:
                    pass

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        out = {"kernel": 0.0, "other": 0.0, "coordinator": self._cpu(self.me) - self.t0}
        for pid, cpu in self.seen.items():
            out[self.kind.get(pid, "other")] += cpu
        return out


def one_sweep(path: Path, out: Path, engine: str) -> tuple[float, float, int, dict]:
    """(wall seconds, summed notebook seconds, failures, CPU seconds by process kind)."""
    from workbench.sweeps import load_sweep, run_sweep, sweep_report

    try:
        watch = CpuWatch()
    except ImportError:
        watch = None
    t0 = time.perf_counter()
    spec = load_sweep(path)
    results = run_sweep(spec, out, workers=2, progress=False, engine=engine)
    sweep_report(spec, results, out / "report.html")
    wall = time.perf_counter() - t0
    cpu = watch.stop() if watch else {}
    return wall, sum(r.seconds for r in results), sum(bool(r.error) for r in results), cpu


def dask_overheads(template: str) -> dict[str, float]:
    from workbench.sweeps.engines import DaskEngine, run_one

    t0 = time.perf_counter()
    eng = DaskEngine(2)
    started = time.perf_counter() - t0
    imports = eng.client.run(_import_workbench)  # {worker: seconds}, both workers at once
    eng.client.submit(_noop, pure=False).result()  # warm the workers' function cache
    rtts = []
    for _ in range(20):
        t = time.perf_counter()
        eng.client.submit(_noop, pure=False).result()
        rtts.append(time.perf_counter() - t)
    args = (run_one, template, "/tmp/x", {"model": "tiny-llama", "learning_rate": 1e-3, "peft": "lora"}, None,
            eng.env)
    t = time.perf_counter()
    for _ in range(100):
        blob = pickle.dumps(args)
    ser = (time.perf_counter() - t) / 100
    t = time.perf_counter()
    eng.close()
    closed = time.perf_counter() - t
    return {"start": started, "imports": max(imports.values()), "rtt": statistics.median(rtts), "ser": ser,
            "bytes": len(blob), "close": closed}


def _cpu(ts, kind: str) -> str:
    values = [t[3][kind] for t in ts if t[3]]
    return f"{statistics.median(values):.1f}" if values else "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=1, help="pairs of sweeps (local/dask order alternates)")
    ap.add_argument("--max-steps", type=int, default=2)
    ap.add_argument("--out", help="also write the table to this markdown file")
    args = ap.parse_args()
    from workbench.sweeps import TEMPLATES_DIR

    load_before = os.getloadavg()
    times: dict[str, list[tuple[float, float, int, dict]]] = {"local": [], "dask": []}
    with tempfile.TemporaryDirectory() as tmp:
        path = sweep_file(Path(tmp), args.max_steps)
        for i in range(args.repeats):
            for engine in (("local", "dask") if i % 2 == 0 else ("dask", "local")):
                times[engine].append(one_sweep(path, Path(tmp) / f"{engine}-{i}", engine))
        over = dask_overheads(str(TEMPLATES_DIR / "train_run.ipynb"))
    load_after = os.getloadavg()
    local = statistics.median(t[0] for t in times["local"])
    dask = statistics.median(t[0] for t in times["dask"])
    lines = [
        f"4-configuration sweep, 2 workers, tiny-llama {args.max_steps} steps, {args.repeats} pair(s); "
        f"cores available {len(os.sched_getaffinity(0))}; load average before {load_before[0]:.2f} "
        f"{load_before[1]:.2f} {load_before[2]:.2f}, after {load_after[0]:.2f} {load_after[1]:.2f} "
        f"{load_after[2]:.2f}",
        "",
        "| engine | wall s (median) | notebook s summed | failures | CPU s: kernels | CPU s: engine processes "
        "| CPU s: coordinator |",
        "|---|---|---|---|---|---|---|",
        *(f"| {e} | {statistics.median(t[0] for t in ts):.1f} | {statistics.median(t[1] for t in ts):.1f} | "
          f"{sum(t[2] for t in ts)} | {_cpu(ts, 'kernel')} | {_cpu(ts, 'other')} | {_cpu(ts, 'coordinator')} |"
          for e, ts in times.items()),
        "",
        f"dask / local wall time: {dask / local:.3f}",
        "",
        "Dask overhead, measured apart: cluster start-up {start:.2f} s · worker imports (workbench.notebooks, "
        "first task) {imports:.2f} s · empty-task round trip {rtt_ms:.1f} ms · "
        "pickling one configuration's task {ser_us:.0f} µs ({bytes} bytes) · shut-down {close:.2f} s".format(
            rtt_ms=over["rtt"] * 1e3, ser_us=over["ser"] * 1e6, **over),
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":  # Dask spawns its worker processes: they re-import this module
    main()
