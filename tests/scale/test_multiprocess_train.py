"""Data-parallel training through accelerate: real 2-process CPU (gloo) runs of tiny-llama.

`workbench train --num-processes 2` starts two copies of the command with accelerate's
launcher; the Trainer's DDP splits each step's batch between them and averages gradients.
The runs here are real (no mocks), short (a few steps, no eval, no samples) and one thread
per process. Each 2-process launch costs ~30-60 s on a busy 2-core machine (three Python
processes import torch/transformers), hence `slow`; the bad-input checks are fast."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench.cli._launch import _free_port
from workbench.cli.main import main
from workbench.threads import available_cores

FSDP_TEMPLATE = Path(__file__).resolve().parents[2] / "templates" / "accelerate_fsdp.yaml"
BASE = ["--model", "tiny-llama", "--dataset", "instructions", "--eval-rows", "0", "--sample-prompts", "0",
        "--precision", "fp32", "--learning-rate", "1e-3", "--quiet"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _cli(*argv, timeout=300):
    """`workbench …` in a fresh process (the launcher starts its own children)."""
    return subprocess.run([sys.executable, "-m", "workbench.cli.main", *map(str, argv)], env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _train_losses(run: Path) -> dict[int, float]:
    steps = [r["step"] for r in _records(run) if r["kind"] == "train"]
    assert len(steps) == len(set(steps)), f"one train record per step, got steps {steps}"
    return {r["step"]: r["loss"] for r in _records(run) if r["kind"] == "train"}


def _shape(run: Path) -> set[str]:
    """The run directory's files, checkpoint contents aside (each rank saves its own RNG state there)."""
    return {str(p.relative_to(run)) for p in run.rglob("*")
            if "checkpoints" not in p.relative_to(run).parts[:1] or p.parent == run / "checkpoints"}


@pytest.mark.slow
def test_two_processes_reproduce_one_process_with_twice_the_batch(tmp_path):
    # Accelerate shards the (seeded, identical on every rank) batch sampler round-robin: rank r takes
    # batch r of each group of 2, so 2 × batch 2 sees exactly the 4 rows 1 × batch 4 sees at each step.
    # transformers averages the token count across ranks (average_tokens_across_devices), so the DDP
    # gradient is the token-weighted mean over all 4 rows: the same loss up to float32 summation order
    # (per-rank padding, the gloo all-reduce). Measured here: identical (max |difference| 0.0) over the
    # 4 steps. rel=1e-5 leaves room for other summation orders (threads, hardware) and still fails a
    # wrong split: step 1 on the first 2 rows instead of all 4 differs by 4e-3 (relative 4e-4).
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["train", *BASE, "--max-steps", "4", "--batch-size", "4", "--run-dir", str(one)]) == 0
    proc = _cli("train", *BASE, "--max-steps", "4", "--batch-size", "2", "--run-dir", two, "--num-processes", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]

    a, b = _train_losses(one), _train_losses(two)
    assert sorted(b) == [1, 2, 3, 4]
    for step in a:
        assert b[step] == pytest.approx(a[step], rel=1e-5), (step, a, b)
    assert _shape(one) == _shape(two)

    resolved = json.loads((two / "config.json").read_text())["resolved"]
    assert (resolved["world_size"], resolved["num_processes"], resolved["global_batch_size"]) == (2, 2, 4)
    assert json.loads((one / "config.json").read_text())["resolved"]["global_batch_size"] == 4
    assert json.loads((two / "summary.json").read_text())["status"] == "completed"
    ckpt = two / "checkpoints" / "checkpoint-4"
    assert (ckpt / ".complete").is_file() and {"rng_state_0.pth", "rng_state_1.pth"} <= {
        p.name for p in ckpt.iterdir()}
    assert proc.stdout.count("run directory:") == 1  # only the main process reports


@pytest.mark.slow
def test_stop_file_stops_both_processes_and_the_run_resumes(tmp_path, capsys):
    run = tmp_path / "run"
    argv = [sys.executable, "-m", "workbench.cli.main", "train", *BASE, "--max-steps", "400", "--batch-size", "1",
            "--save-steps", "1000", "--run-dir", str(run), "--num-processes", "2"]
    proc = subprocess.Popen(argv, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            metrics = run / "metrics.jsonl"
            if metrics.is_file() and any(r["kind"] == "train" for r in _records(metrics.parent)):
                (run / "STOP").touch()  # seen by rank 0 only; the callback's all-reduce tells rank 1
                break
            time.sleep(0.05)
        out, err = proc.communicate(timeout=240)  # a rank left behind would hang here (DDP)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "stopped", summary
    stopped = summary["steps"]
    assert 1 <= stopped < 400
    ckpt = run / "checkpoints" / f"checkpoint-{stopped}"
    assert (ckpt / ".complete").is_file()  # the stop saved a checkpoint with both ranks' state
    assert {"rng_state_0.pth", "rng_state_1.pth"} <= {p.name for p in ckpt.iterdir()}

    # The global batch is part of the run: a resume with another process count is refused, one line.
    rc = main(["train", "--resume", "--run-dir", str(run)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "--num-processes 2" in err, err

    # Resume through `accelerate launch` itself, the other entry point (--multi_gpu is its torchrun
    # launcher; without it, on CPU, accelerate starts one process whatever --num_processes says).
    proc = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                           "--main_process_port", str(_free_port()), "-m", "workbench.cli.main",
                           "train", "--resume", "--run-dir", str(run), "--max-steps", str(stopped + 2), "--quiet"],
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == stopped + 2
    assert sorted(_train_losses(run)) == list(range(1, stopped + 3))
    assert json.loads((run / "config.json").read_text())["resolved"]["world_size"] == 2
    assert {"rng_state_0.pth", "rng_state_1.pth"} <= {
        p.name for p in (run / "checkpoints" / f"checkpoint-{stopped + 2}").iterdir()}


def _one_line(capsys, argv, *needles):
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("extra, needles", [
    (["--num-processes", "0"], ["--num-processes must be a whole number >= 1", "'0'"]),
    (["--num-processes", "two"], ["--num-processes must be a whole number >= 1", "'two'"]),
    (["--num-processes", "2", "--accelerate-config", "missing.yaml"], ["--accelerate-config", "no such file"]),
    (["--num-processes", str(available_cores() + 1), "--device", "cpu"],
     [f"only {available_cores()} CPU core(s)"]),
    (["--num-processes", "2", "--method", "onpolicy-dpo", "--dataset", "arithmetic", "--max-steps", "8"],
     ["'onpolicy-dpo'", "one process only"]),
    # accelerate would quietly run CPU processes as plain DDP: refused instead (this also parses the template)
    (["--accelerate-config", FSDP_TEMPLATE, "--device", "cpu"], ["FSDP", "needs CUDA GPUs", "device is cpu"]),
    (["--num-processes", "2", "--accelerate-config", "BAD_CONFIG"], ["not a valid accelerate config file"]),
], ids=["zero", "not-int", "no-config-file", "too-many-cpu", "coordinated", "fsdp-on-cpu", "bad-config"])
def test_bad_multiprocess_input_is_one_line_before_anything_is_written(tmp_path, capsys, extra, needles):
    run = tmp_path / "run"
    bad = tmp_path / "bad.yaml"
    bad.write_text("distributed_type: MULTI_GPU\nnum_procesess: 2\n")  # a misspelt key
    extra = [bad if a == "BAD_CONFIG" else a for a in extra]
    _one_line(capsys, ["train", *BASE, "--max-steps", "2", "--run-dir", run, *extra], *needles)
    assert not run.exists()
