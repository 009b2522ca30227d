"""The suite's notebook kernels are forks of a server that has imported the heavy libraries
(tests/kernel_forkserver.py). A forked kernel must behave as a fresh one: the caller's folder,
environment, argv and thread count; interrupts and kills reach it; an environment the server's
imports could not honour gets a fresh kernel."""
import json
import os
import time

import nbformat
import pytest

from workbench.notebooks import execute

pytestmark = pytest.mark.skipif(not os.environ.get("WORKBENCH_TEST_KERNEL_SERVER"),
                                reason="kernels are not forked (WORKBENCH_TEST_FRESH_KERNELS=1)")

PROBE = """import os, sys, json
print(json.dumps({"preloaded": "transformers" in sys.modules, "cwd": os.getcwd(), "ppid": os.getppid(),
                  "mark": os.environ.get("WB_FORK_MARK"), "argv0": sys.argv[0],
                  "threads": __import__("torch").get_num_threads(), "cwd_on_path": "" in sys.path}))"""


def _notebook(folder, *cells):
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / "probe.ipynb")
    return folder / "probe.ipynb"


def _stdout(run, cell=0):
    """What a cell of the executed notebook printed (beside any widget it displayed)."""
    return next(o["text"] for o in nbformat.read(run.notebook, 4).cells[cell].outputs if o.get("name") == "stdout")


def _probe(run):
    return json.loads(_stdout(run))


def test_a_forked_kernel_has_the_callers_folder_environment_and_threads(tmp_path, monkeypatch):
    monkeypatch.setenv("WB_FORK_MARK", "from the caller")
    nb = _notebook(tmp_path / "nb", PROBE)
    for threads in (1, 2):
        run = execute(nb, tmp_path / f"out{threads}", html=False, threads=threads)
        assert run.error is None
        seen = _probe(run)
        assert seen["preloaded"], "the kernel was not forked from the server"
        assert seen["cwd"] == str(nb.parent) and seen["cwd_on_path"]
        assert seen["mark"] == "from the caller" and seen["threads"] == threads
        assert seen["argv0"] == "ipykernel_launcher" and seen["ppid"] != os.getpid()


# What libraries decide when imported inside a kernel; the server imported them before any kernel
# existed, so each is a way a forked kernel could differ from a fresh one.
DECISIONS = ["""import os
os.environ["TQDM_DISABLE"] = "1"  # as the notebooks' first cells do, before their imports""",
             """import json, sys, comm, pandas, tqdm.auto, plotly.io, transformers.trainer
import huggingface_hub.utils
hub_tqdm = sys.modules["huggingface_hub.utils.tqdm"]
from transformers.utils.import_utils import is_in_notebook
print(json.dumps({"preloaded": "transformers" in sys.modules and "trl" in sys.modules,
    "pandas_max_columns": pandas.get_option("display.max_columns"),
    "tqdm_auto": [c.__name__ for c in tqdm.auto.tqdm.__mro__],
    "hub_tqdm": [c.__name__ for c in hub_tqdm.tqdm.__mro__],
    "tqdm_disabled": [tqdm.auto.tqdm(range(2)).disable, tqdm.tqdm(range(2), file=sys.stdout).disable],
    "plotly_renderer": plotly.io.renderers.default,
    "progress_callback": transformers.trainer.DEFAULT_PROGRESS_CALLBACK.__name__,
    "in_notebook": is_in_notebook(),
    "widget_comm_targets": sorted(t for t in comm.get_comm_manager().targets if t.startswith("jupyter.widget")),
}))"""]


def test_a_forked_kernel_decides_as_a_fresh_one_what_libraries_decide_at_import(tmp_path, monkeypatch):
    nb = _notebook(tmp_path / "nb", *DECISIONS)
    forked = execute(nb, tmp_path / "forked", html=False)
    monkeypatch.setenv("WORKBENCH_TEST_KERNEL_SERVER", "")  # the kernel spec's client starts a fresh kernel
    fresh = execute(nb, tmp_path / "fresh", html=False)
    seen = [json.loads(_stdout(r, cell=1)) for r in (forked, fresh)]
    assert (seen[0].pop("preloaded"), seen[1].pop("preloaded")) == (True, False)
    assert seen[0] == seen[1]
    assert seen[1]["widget_comm_targets"] and seen[1]["tqdm_disabled"][1]  # the probes see a kernel


def test_an_import_time_variable_of_its_own_gets_a_fresh_kernel(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # read by huggingface_hub when imported
    run = execute(_notebook(tmp_path / "nb", PROBE), tmp_path / "out", html=False)
    assert run.error is None
    assert not _probe(run)["preloaded"]


def test_a_runaway_forked_kernel_is_stopped_at_the_time_limit(tmp_path):
    nb = _notebook(tmp_path / "nb", "import sys\nprint('forked' if 'transformers' in sys.modules else 'fresh')",
                   "import time\nfor _ in range(600):\n    time.sleep(0.1)")
    start = time.monotonic()
    run = execute(nb, tmp_path / "out", html=False, total_timeout=3)
    assert run.timed_out and time.monotonic() - start < 60
    assert _stdout(run) == "forked\n"
