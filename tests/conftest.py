"""Shared test setup: runs go to a temp folder, nothing touches the hub; the tiny model and
its one-logit variants, loaded once per session for the tests that only read them."""
import copy
import itertools
import os
import pickle
import sys

import pytest
from filelock import FileLock

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from workbench.allocator import keep_freed_memory  # noqa: E402
from workbench.notebooks import skip_iri_grammars  # noqa: E402

skip_iri_grammars()  # before any test module imports nbformat: ~0.85 s less per test process
keep_freed_memory()  # as train() would: tests that probe or score without training reuse memory too

# Under pytest-xdist (`make test` runs one worker per core) every worker is one of several torch
# processes on these cores, and so is every process a test starts (CLI runs, kernels, sweep
# workers). Two pools as wide as the machine slow each other ~40x, so all of them take one
# thread unless the user already chose.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, "1")


def pytest_configure(config):
    """The session's notebook kernels are forks of one server that has imported torch,
    transformers, TRL and PEFT (tests/kernel_forkserver.py): ~4 s of imports once instead of in
    each of ~40 kernels. Started here, in the xdist controller (or the only process), before any
    worker or kernel exists, so every process a test starts inherits JUPYTER_PATH and the server's
    socket. Linux only (the kernels die with the server by prctl); WORKBENCH_TEST_FRESH_KERNELS=1
    turns it off."""
    if (os.environ.get("PYTEST_XDIST_WORKER") or os.environ.get("WORKBENCH_TEST_FRESH_KERNELS") == "1"
            or not sys.platform.startswith("linux")):
        return
    import json
    import subprocess
    import tempfile
    from pathlib import Path

    here = Path(__file__).resolve().parent
    root = Path(tempfile.mkdtemp(prefix="wb-kernels-"))
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, str(here / "kernel_forkclient.py"), "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)", "language": "python", "metadata": {"debugger": True}}))
    sock = str(root / "server.sock")
    log = open(root / "server.log", "wb")
    config._kernel_server = (subprocess.Popen([sys.executable, str(here / "kernel_forkserver.py"), sock],
                                              stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                              start_new_session=True), root, log)
    os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(root), os.environ.get("JUPYTER_PATH")) if p)
    os.environ["WORKBENCH_TEST_KERNEL_SERVER"] = sock


def pytest_unconfigure(config):
    server = getattr(config, "_kernel_server", None)
    if server is None:
        return
    import shutil
    proc, root, log = server
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except Exception:  # noqa: BLE001
        proc.kill()
    log.close()
    lines = (root / "server.log").read_text(errors="replace").splitlines()
    forked = sum(line.startswith("forked kernel") for line in lines)
    fresh = [line for line in lines if line.startswith("fresh kernel")]
    print(f"\nkernels: {forked} forked from tests/kernel_forkserver.py, {len(fresh)} started fresh"
          + "".join(f"\n  {line}" for line in sorted(set(fresh))))
    shutil.rmtree(root, ignore_errors=True)


# Modules whose tests share one long `built_once` build (notebook executions, ~1.5 min each).
BUILT_ONCE_MODULES = ("tests/notebooks/test_notebooks.py", "tests/course/test_course_grading.py")


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist's worksteal, worker i is first sent the i-th contiguous slice of the
    collection, and an idle worker steals the *end* of another's queue. A module of
    BUILT_ONCE_MODULES left where it falls tends to be reached last: the other worker, out of
    work, steals some of its tests and then sleeps on the build's lock (measured: 30 and 70 s
    of an idle core). So each goes whole to the front of its own slice and is built first,
    while there is other work for everyone. Without xdist the order is left alone."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if workers < 2:
        return
    front = {m: [] for m in BUILT_ONCE_MODULES}
    rest = []
    for item in items:
        front.get(item.nodeid.split("::", 1)[0], rest).append(item)
    groups = [g for g in front.values() if g]
    sizes, left = [], len(items)
    for i in range(workers):  # xdist's first hand-out: len(pending) // nodes still to serve
        sizes.append(left // (workers - i))
        left -= sizes[-1]
    slices = [list(groups[i]) if i < len(groups) else [] for i in range(workers)]
    slices[-1] += [item for g in groups[workers:] for item in g]  # more modules than workers
    if any(len(s) > n for s, n in zip(slices, sizes)):
        return
    it = iter(rest)
    for s, n in zip(slices, sizes):
        s += [next(it) for _ in range(n - len(s))]
    items[:] = [item for s in slices for item in s]


@pytest.fixture(autouse=True)
def _runs_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_RUNS", str(tmp_path / "runs"))


@pytest.fixture(autouse=True)
def _hash_seed_stays_the_tests():
    """Dask's process pool sets PYTHONHASHSEED in the process that uses it, for good: every later
    kernel of that test worker would inherit it, and start fresh instead of forked (it is read at
    interpreter start-up; tests/kernel_forkserver.py)."""
    seed = os.environ.get("PYTHONHASHSEED")
    yield
    if seed is None:
        os.environ.pop("PYTHONHASHSEED", None)
    else:
        os.environ["PYTHONHASHSEED"] = seed


@pytest.fixture(scope="session")
def tiny():
    """(model, tokenizer) of tiny-llama on the CPU, in eval mode. Shared: tests must not train it."""
    from workbench.models import load_model

    model, tok = load_model("tiny-llama", device="cpu")
    return model.eval(), tok


@pytest.fixture(scope="session")
def forced(tiny):
    """forced(token_id, boost=100.0): a copy of the tiny model whose head adds `boost` to one
    token's logit, so greedy decoding favours (at a large boost: repeats) that token. Real
    weights, one edited logit; each variant is built once per session."""
    import torch

    cache = {}

    def make(token_id: int, boost: float = 100.0):
        if (token_id, boost) not in cache:
            model, tok = tiny
            m = copy.deepcopy(model)
            old = m.lm_head
            head = torch.nn.Linear(old.in_features, old.out_features, bias=True)
            with torch.no_grad():
                head.weight.copy_(old.weight)
                head.bias.zero_()
                head.bias[token_id] = boost
            m.lm_head = head  # untied from the embedding: only the output layer changes
            cache[(token_id, boost)] = (m.eval(), tok)
        return cache[(token_id, boost)]
    return make


@pytest.fixture(scope="session")
def built_once(tmp_path_factory):
    """built_once(name, build): `build(folder)` once per test session, even when pytest-xdist
    hands a module's tests to both workers (worksteal does; `xdist_group` does not group under
    pytest 9). The first worker to ask builds it under a file lock in the session's shared temp
    folder and pickles the result; the other waits for the lock and reads it. Building the
    notebook check on both workers cost ~125 s of a 674 s suite."""
    def get(name: str, build):
        if not os.environ.get("PYTEST_XDIST_WORKER"):
            return build(tmp_path_factory.mktemp(name))
        shared = tmp_path_factory.getbasetemp().parent  # one folder per session, above every worker's
        result = shared / f"{name}.pickle"
        with FileLock(str(result) + ".lock"):
            if not result.is_file():
                folder = shared / name
                folder.mkdir()
                result.write_bytes(pickle.dumps(build(folder)))
            return pickle.loads(result.read_bytes())
    return get


@pytest.fixture
def build_job(tmp_path):
    """build_job(**config): the trainer (or on-policy coordinator) `workbench train` would run
    for this TrainConfig, built the engine's way but not trained; its run directory is closed."""
    from workbench import TrainConfig
    from workbench.engine import _build, plan
    from workbench.runs.run import Run

    count = itertools.count()

    def build(**config):
        p = plan(TrainConfig(**config))
        with Run.create(tmp_path / f"job-{next(count)}", p.resolved()) as run:
            job, _ = _build(p, run)
        return job
    return build
