"""An exclusive OS lock on a run directory, held for the run's life.

`fcntl.flock` on `<run>/.lock`: the kernel drops the lock when the holder exits, however
it exits, so a lock left by a killed process is recovered by simply taking it again (the
file's stale PID is overwritten). A second process gets one line naming the holder."""
from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from ..errors import WorkbenchError

LOCK = ".lock"


def _written_pid(fd: int) -> str:
    """The PID the holder wrote into the lock file."""
    return os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"


def holder(run_dir: str | Path) -> str | None:
    """The PID (as written) of the process holding this run's lock now, else None. Only asks
    the kernel: nothing is created, and a stale .lock file of a dead process reads as free."""
    try:
        fd = os.open(Path(run_dir) / LOCK, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    except BlockingIOError:
        return _written_pid(fd)
    finally:
        os.close(fd)


class RunLock:
    def __init__(self, run_dir: str | Path, what: str = "run directory"):
        self.path = Path(run_dir) / LOCK
        self.what = what  # how the message names the folder
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        # `holder()` (a run listing, the app's run lists) takes a shared lock for a moment: a
        # few retries over ~0.2 s tell that apart from a process that holds the run.
        for _ in range(20):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                time.sleep(0.01)
        else:
            pid = _written_pid(fd)
            os.close(fd)
            raise WorkbenchError(f"{self.what} {self.path.parent} is in use by another process "
                                 f"(pid {pid}); wait for it to finish or stop it first")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None
