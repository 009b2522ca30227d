"""Keep freed tensor memory in the process instead of handing it back to the kernel.

torch's CPU tensors come from the C library's `malloc`. glibc serves every block over its
mmap threshold (at most 32 MB by default) with a fresh `mmap` and returns it with `munmap`
when freed, so the next step's tensor of the same size faults in and zeroes every page again.
Logit-sized tensors (rows × a 49k-word vocabulary) are over that size, and a training step
allocates and frees them many times: in a 6-step DPO+LoRA run of SmolLM2 on 2 cores, 17% of
the CPU time was the kernel zeroing pages (`perf`), sys time 7–9 s of ~45 s CPU.

Raising the mmap threshold to 256 MB and the trim threshold to 1 GB keeps such blocks in the
heap for reuse. Six steps of DPO+LoRA (SmolLM2, batch 4, eval off; medians of 3, fresh
processes): half the page faults, sys time 10.4 → 7.4 s, wall 0.88×, peak RSS +5%; SFT+LoRA
0.94×, RSS +1% (`benchmarks/bench_allocator.py`, `benchmarks/results/allocator.md`). The cost
is memory the process keeps: a heap holds freed blocks until a later request fits them, e.g.
~6 spare 64 MB blocks when the same 64 MB tensor is made over and over (posix_memalign's
slack keeps a freed block from fitting the identical request at first). Blocks over 256 MB
are still mapped and unmapped as before. Only glibc has these knobs; elsewhere this does
nothing.

A user who tunes malloc themselves (`GLIBC_TUNABLES` naming a `glibc.malloc` knob) or sets
`WORKBENCH_MALLOC_TUNING=0` is left alone.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

OPT_OUT_ENV = "WORKBENCH_MALLOC_TUNING"
M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 << 20
TRIM_THRESHOLD = 1 << 30

_done: bool | None = None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (once); True if they were set."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if os.environ.get(OPT_OUT_ENV, "").strip() == "0" or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl without mallopt, Windows)
        return _done
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success; the mmap threshold first, since setting it also stops
    # glibc from adjusting the trim threshold on its own.
    _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done
