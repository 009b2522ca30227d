"""A `workbench check` stopped by SIGTERM (a cancelled CI job, `kill`) must not leave its
notebook worker or that worker's kernel running: both are in sessions of their own, so
they would otherwise outlive it and keep the cores busy."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")  # a zombie has exited


def test_sigterm_stops_the_worker_and_its_kernel(tmp_path):
    pids = tmp_path / "pids.json"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        f"import json, os, time\nopen({str(pids)!r} + '.tmp', 'w').write(json.dumps([os.getpid(), os.getppid()]))\n"
        f"os.replace({str(pids)!r} + '.tmp', {str(pids)!r})\ntime.sleep(120)")]  # written whole or not at all
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "sleeper.ipynb"
    nbformat.write(nb, path)
    env = {**os.environ, "WORKBENCH_TEST_KERNEL_SERVER": ""}  # a fresh kernel: the worker is its parent
    check = subprocess.Popen([sys.executable, "-m", "workbench.cli.main", "check", str(path), "--no-compare",
                              "-o", str(tmp_path / "out")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 90
    while not pids.exists() and time.time() < deadline and check.poll() is None:
        time.sleep(0.2)
    assert pids.exists(), check.communicate()[0].decode()[-2000:]
    kernel, worker = json.loads(pids.read_text())
    assert _alive(kernel) and _alive(worker)
    check.send_signal(signal.SIGTERM)
    check.wait(timeout=30)
    deadline = time.time() + 15  # the kernel notices its parent is gone within about a second
    while (_alive(kernel) or _alive(worker)) and time.time() < deadline:
        time.sleep(0.2)
    assert not _alive(worker), "the notebook worker outlived `workbench check`"
    assert not _alive(kernel), "the kernel outlived `workbench check`"
