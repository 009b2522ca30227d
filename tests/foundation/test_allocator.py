"""workbench.allocator: a freed logit-sized tensor is reused, not faulted in again, and a user
who tunes malloc themselves is left alone. Each case runs in a fresh process, since the
setting is per process and lasts for its life."""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

# A 64 MB tensor, over glibc's default mmap threshold (32 MB at most), made and freed 20
# times: prints the page faults the last 5 cost. (Kept blocks are reused only once the heap
# has a free run big enough for an aligned 64 MB request: after a few rounds, not the first.)
REUSE = """
import resource, torch
from workbench.allocator import keep_freed_memory
print(keep_freed_memory())
for i in range(20):
    if i == 15:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.ones(16 << 20); del x
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
PAGES_64MB = (64 << 20) // 4096


def _run(code: str, **env: str) -> list[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "WORKBENCH_MALLOC_TUNING")}
    out = subprocess.run([sys.executable, "-c", code], env={**base, "OMP_NUM_THREADS": "1", **env},
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_freed_large_tensor_is_reused_without_page_faults():
    tuned, faults = _run(REUSE)
    assert tuned == "True"
    assert int(faults) < PAGES_64MB // 10, f"{faults} page faults for 5 reused 64 MB tensors"


def test_without_it_each_large_tensor_faults_in_again():
    # The control: what the setting saves (the same code, opted out).
    tuned, faults = _run(REUSE, WORKBENCH_MALLOC_TUNING="0")
    assert tuned == "False"
    assert int(faults) > 4 * PAGES_64MB, f"only {faults} page faults: glibc reused the block anyway"


@pytest.mark.parametrize("env", [{"WORKBENCH_MALLOC_TUNING": "0"},
                                 {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=1048576"}],
                         ids=["opt-out", "user-tunables"])
def test_user_settings_win(env):
    code = "from workbench.allocator import keep_freed_memory as k; print(k(), k())"
    assert _run(code, **env) == ["False", "False"]
