"""SIGTERM (`kill`, `timeout`, a cancelled CI job, a stopped container) taking Ctrl-C's path."""
from __future__ import annotations

import contextlib
import signal
import threading


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Inside the block SIGTERM raises KeyboardInterrupt, so whatever Ctrl-C cleans up is cleaned
    up (a run records why it ended and where it can resume; the checker kills its workers). Only
    in the main thread, where Python delivers signals; elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    before = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)
