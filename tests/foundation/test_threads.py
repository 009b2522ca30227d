"""Thread sizing: each workbench process takes its share of the cores, never the host's count."""
from __future__ import annotations

import torch

from workbench import threads


def test_cgroup_quota_is_read_in_whole_cores(tmp_path):
    f = tmp_path / "cpu.max"
    for text, cores in [("max 100000\n", None), ("400000 100000\n", 4), ("50000 100000\n", 1), ("garbage", None)]:
        f.write_text(text)
        assert threads.cgroup_quota(f) == cores, text
    assert threads.cgroup_quota(tmp_path / "absent") is None


def test_share_of_cores_and_user_setting_wins(monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 8)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv(threads.WORKERS_ENV, raising=False)
    assert threads.planned_threads() == 8
    assert threads.planned_threads(3) == 2
    assert threads.planned_threads(16) == 1  # never 0
    monkeypatch.setenv(threads.WORKERS_ENV, "4")
    assert threads.planned_threads() == 2
    env = threads.worker_env(2)
    assert env["OMP_NUM_THREADS"] == "4" and env[threads.WORKERS_ENV] == "2"
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's decision
    assert threads.planned_threads(4) == 3 and threads.worker_env(4)["OMP_NUM_THREADS"] == "3"
    monkeypatch.setenv("OMP_NUM_THREADS", "zero")  # not a number: ignored, not a crash
    assert threads.planned_threads(4) == 2


def test_size_torch_threads_sets_the_pool(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv(threads.WORKERS_ENV, str(threads.available_cores()))  # one core each
    try:
        assert threads.size_torch_threads() == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
