"""A fork server for the notebook kernels the test suite starts.

Every notebook the suite runs (papermill, nbclient, `workbench check`, sweeps, the course's
grading, the browser tests' JupyterLab) starts a kernel, and every kernel's first cell imports
torch, transformers, TRL and PEFT: ~4 s of CPU before it does anything, ~40 times a session on
2 cores. This server imports them once; each kernel is then a fork of it that runs ipykernel as
`python -m ipykernel_launcher` would. `tests/conftest.py` starts it for the session and points
JUPYTER_PATH at a `python3` kernel spec whose command is `kernel_forkclient.py`.

A forked kernel is a real ipykernel in its own process, with the caller's argv, working folder,
environment and standard streams. What differs from a fresh interpreter is only what was read
when the libraries were imported: the client falls back to a fresh `ipykernel_launcher` when any
variable such a library reads at import (IMPORT_TIME_ENV) differs from the server's, and the
thread-count variables are applied to torch in the child. Run by hand, this file serves until
killed: `python tests/kernel_forkserver.py SOCKET`.
"""
import json
import os
import selectors
import signal
import socket
import sys

# Variables the preloaded libraries (or the interpreter) read when they are imported; a request
# whose values differ from the server's is not forked (the client starts a fresh kernel).
# Thread counts are not among them (the child applies those), nor is TORCHINDUCTOR_CACHE_DIR
# (torch writes it into the environment of whoever imports it). PYTHONPATH is applied in the
# child unless one of its folders holds a preloaded package or a sitecustomize.
IMPORT_TIME_ENV = ("HF_", "HUGGINGFACE", "TRANSFORMERS", "PYTORCH_", "CUDA", "PYTHON", "LD_", "GOMP_",
                   "MPLCONFIGDIR", "XDG_", "HOME", "IPYTHON", "PLOTLY", "COLAB_", "KAGGLE_", "VSCODE_",
                   "DATABRICKS_", "SPYDER", "QT_API")
# HF_XET_HIGH_PERFORMANCE is read at import, but only tunes hub downloads (none here); lm_eval sets
# it when imported, so it is in the environment of any test process that imported lm_eval.
# PYTHONPATH is checked on its own (path_entries_shadow).
NOT_READ_HERE = ("HF_XET_HIGH_PERFORMANCE", "PYTHONPATH")
# Not ipykernel's app: its classes read JPY_PARENT_PID and others when imported (0.04 s in the child).
# Its shell module is what tqdm.autonotebook looks for to decide that it runs in a kernel.
PRELOAD = ("ipykernel.zmqshell", "torch", "numpy", "pandas", "transformers", "transformers.trainer",
           "peft", "trl", "trl.data_utils", "datasets", "plotly.graph_objects", "ipywidgets", "tqdm.auto")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def import_time_env(env: dict) -> dict:
    return {k: v for k, v in env.items() if k.startswith(IMPORT_TIME_ENV) and k not in NOT_READ_HERE}


def path_entries_shadow(pythonpath: str) -> bool:
    """Whether a folder of `pythonpath` would change what the server imported, or run code at start-up."""
    names = {name.split(".")[0] for name in PRELOAD} | {"sitecustomize", "usercustomize"}
    return any(os.path.exists(os.path.join(entry, name)) or os.path.exists(os.path.join(entry, name + ".py"))
               for entry in filter(None, pythonpath.split(os.pathsep)) for name in names)


class ZMQInteractiveShell:
    """What `get_ipython()` returns while the server imports: several libraries decide at import
    whether they run in a Jupyter kernel (pandas' display.max_columns, tqdm.auto, transformers'
    progress callback, plotly's renderer, ipywidgets' comm targets), and every fork becomes one."""
    __module__ = "ipykernel.zmqshell"  # plotly checks the shell's class name and module
    config = {"IPKernelApp": {}}          # tqdm.autonotebook and transformers check this

    class kernel:  # noqa: N801 - pandas only asks whether the shell has one
        pass


def preload() -> None:
    """Import PRELOAD as a kernel's first cell would: with a Jupyter shell in place."""
    import builtins
    import importlib

    import IPython
    from IPython.core.getipython import get_ipython as real
    shell = ZMQInteractiveShell()
    importing = [True]

    def get_ipython():  # modules that bind it at import keep this one; in a kernel it is the real one
        return shell if importing[0] else real()

    IPython.get_ipython = builtins.get_ipython = get_ipython
    builtins.__IPYTHON__ = True
    try:
        for name in PRELOAD:
            importlib.import_module(name)
    finally:
        importing[0] = False
        del builtins.get_ipython, builtins.__IPYTHON__  # the kernel's shell puts its own in
    _tqdm_reads_its_variables_when_called()


def _tqdm_reads_its_variables_when_called() -> None:
    """tqdm reads TQDM_* (TQDM_DISABLE...) when it is imported, and a notebook's first cell sets
    them before its imports; here tqdm was imported before any cell ran. So the forks read them
    when a bar is made, which for such a notebook is the same."""
    import tqdm.std
    from tqdm.utils import envwrap

    init = tqdm.std.tqdm.__dict__["__init__"].func
    types = {"total": float, "ncols": int, "miniters": float, "position": int, "nrows": int}  # tqdm.std's

    def __init__(self, *args, **kwargs):
        return envwrap("tqdm", is_method=True, types=types)(init).__get__(self, type(self))(*args, **kwargs)

    tqdm.std.tqdm.__init__ = __init__


def _as_imported_in(app) -> None:
    """What importing ipywidgets in this kernel would have done: register its comm targets."""
    import ipywidgets
    if app.shell is not None:
        ipywidgets.register_comm_target()


def _recv_request(conn: socket.socket) -> tuple[dict, list[int]]:
    data, fds = b"", []
    while not data.endswith(b"\n"):
        chunk, more, _, _ = socket.recv_fds(conn, 1 << 20, 8)
        if not chunk:
            raise EOFError
        data += chunk
        fds += more
    return json.loads(data), fds


def _become_kernel(conn: socket.socket, request: dict, fds: list[int]) -> None:
    """In the forked child: take the caller's streams, folder, environment and argv, then run
    ipykernel. Never returns."""
    code = 1
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the server
        for target, fd in zip((0, 1, 2), fds):
            os.dup2(fd, target)
        for fd in fds:
            os.close(fd)
        os.setsid()
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["ipykernel_launcher", *request["args"]]
        if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
            del sys.path[0]  # this folder; ipykernel adds the working folder back, as the launcher does
        extra = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p and p not in sys.path]
        sys.path[:0] = extra  # where a fresh interpreter puts PYTHONPATH
        import numpy as np
        import torch
        from threadpoolctl import threadpool_limits
        # OpenMP, MKL and OpenBLAS read these when loaded, i.e. in the server: apply the caller's
        for var, api in zip(THREAD_VARS, ("openmp", "blas", "blas")):
            if request["env"].get(var, "").isdigit():
                threadpool_limits(max(1, int(request["env"][var])), user_api=api)
        if request["env"].get("OMP_NUM_THREADS", "").isdigit():
            torch.set_num_threads(max(1, int(request["env"]["OMP_NUM_THREADS"])))
        np.random.seed()  # a fresh interpreter's legacy numpy state is not shared with its siblings
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        from ipykernel.kernelapp import IPKernelApp
        try:
            app = IPKernelApp.instance()  # launch_new_instance, with the comm targets in between
            app.initialize()
            _as_imported_in(app)
            app.start()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        import atexit
        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001 - the child must never go back into the server's loop
        import traceback
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code)


def serve(path: str) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)  # callers wait in the backlog while the imports below run
    preload()
    own = import_time_env(os.environ)
    children: dict[int, socket.socket] = {}   # pid -> its client's connection
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        for key, _ in sel.select(timeout=0.05):
            if key.fileobj is listener:
                conn, _ = listener.accept()
                try:
                    request, fds = _recv_request(conn)
                except (EOFError, OSError, ValueError):
                    conn.close()
                    continue
                theirs = import_time_env(request["env"])
                differ = sorted(k for k in own.keys() | theirs.keys() if own.get(k) != theirs.get(k))
                if path_entries_shadow(request["env"].get("PYTHONPATH", "")):
                    differ.append("PYTHONPATH (holds a preloaded package or a sitecustomize)")
                if differ:
                    print("fresh kernel, for the import-time variables", differ, flush=True)
                    conn.sendall(b"fresh\n")
                    conn.close()
                    for fd in fds:
                        os.close(fd)
                    continue
                pid = os.fork()
                if pid == 0:
                    sel.close()
                    listener.close()
                    for other in children.values():
                        other.close()
                    _become_kernel(conn, request, fds)
                for fd in fds:
                    os.close(fd)
                print("forked kernel", pid, flush=True)
                conn.sendall(f"{pid}\n".encode())
                children[pid] = conn
                sel.register(conn, selectors.EVENT_READ, pid)
            else:  # a client hung up or was killed: its kernel goes too
                pid = key.data
                try:
                    gone = not key.fileobj.recv(1)
                except OSError:
                    gone = True
                if gone:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        while children:  # reap, and tell each client how its kernel ended
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            conn = children.pop(pid, None)
            if conn is not None:
                sel.unregister(conn)
                try:
                    conn.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
                except OSError:
                    pass
                conn.close()


if __name__ == "__main__":
    serve(sys.argv[1])
