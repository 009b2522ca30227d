"""The first end-to-end slice: SFT on tiny-llama through TRL, the run store, listeners,
stop and resume."""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import pytest

from workbench import TrainConfig, train
from workbench.cli.main import main

FAST = dict(model="tiny-llama", dataset="instructions", max_length=64, batch_size=4,
            eval_rows=8, sample_prompts=1, sample_max_new_tokens=8)


def _metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def _cli(*args, **kw):
    """The console command in a fresh process (what a user runs: every import, exit codes)."""
    return subprocess.run([sys.executable, "-m", "workbench.cli.main", *args],
                          capture_output=True, text=True, **kw)


@pytest.fixture
def cli(capsys):
    """The same command line in this process: `workbench.cli.main.main`, exactly what the
    console script calls, without ~10 s of importing torch/transformers/TRL per call
    (test_cli_train_contract and test_bad_knobs.test_the_console_command_itself keep real
    processes)."""
    def run(*args):
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as e:  # argparse's own errors
            code = e.code
        out = capsys.readouterr()
        return types.SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)
    return run


def test_loss_falls_and_run_dir_is_complete(tmp_path):
    seen = []
    cfg = TrainConfig(**FAST, peft="full", max_steps=20, learning_rate=3e-3, eval_steps=10,
                      save_steps=10, run_dir=str(tmp_path / "run"))
    result = train(cfg, listeners=[seen.append])
    assert result.status == "completed"
    losses = [r.values["loss"] for r in result.records if r.kind == "train"]
    assert len(losses) == 20
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5, losses
    run = Path(result.run_dir)
    for name in ("config.json", "metrics.jsonl", "samples.jsonl", "summary.json"):
        assert (run / name).is_file(), name
    assert (run / "final" / "model.safetensors").is_file()
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == "tiny-llama" and config["method_args"]["loss_type"] == "nll"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 20 and summary["trainable_share"] == 1.0
    # The listener saw exactly what the file holds (samples go to samples.jsonl).
    file_records = _metrics(run)
    assert [r.to_json() for r in seen if r.kind != "sample"] == file_records
    assert all("step" in r for r in file_records)


def test_lora_writes_adapter_and_counts_trainable(tmp_path):
    cfg = TrainConfig(**{**FAST, "eval_rows": 0}, peft="lora", max_steps=2, run_dir=str(tmp_path / "run"))
    result = train(cfg)
    assert (Path(result.run_dir) / "final" / "adapter_model.safetensors").is_file()
    assert 0 < result.summary["trainable_share"] < 0.05


def test_stop_flag_ends_cleanly_and_keeps_work(tmp_path):
    stop = threading.Event()

    def stop_at_3(rec):
        if rec.kind == "train" and rec.step >= 3:
            stop.set()

    cfg = TrainConfig(**{**FAST, "eval_rows": 0}, max_steps=50, run_dir=str(tmp_path / "run"))
    result = train(cfg, listeners=[stop_at_3], stop=stop)
    assert result.status == "stopped"
    assert result.summary["steps"] == 3
    assert (Path(result.run_dir) / "final" / "adapter_model.safetensors").is_file()
    assert (Path(result.run_dir) / "checkpoints" / "checkpoint-3").is_dir()


def test_cli_train_contract(tmp_path):
    run_dir = tmp_path / "DIR"
    proc = _cli("train", "--model", "tiny-llama", "--method", "sft", "--dataset", "instructions",
                "--max-steps", "3", "--run-dir", str(run_dir), "--set", "max_length=64")
    assert proc.returncode == 0, proc.stderr[-2000:]
    recs = [r for r in _metrics(run_dir) if r["kind"] == "train"]
    assert len(recs) >= 3 and all("loss" in r and "step" in r for r in recs)
    listed = _cli("runs", "--root", str(tmp_path))
    assert "DIR" in listed.stdout and "completed" in listed.stdout


def test_resume_after_sigkill_gives_continuous_steps(tmp_path):
    run_dir = tmp_path / "killed"
    args = ["train", "--model", "tiny-llama", "--dataset", "instructions", "--max-steps", "16",
            "--save-steps", "4", "--eval-rows", "0", "--run-dir", str(run_dir), "--set", "max_length=64",
            "--set", "sample_prompts=0"]
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli.main", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        ckpts = list((run_dir / "checkpoints").glob("checkpoint-*")) if run_dir.exists() else []
        steps = ([r["step"] for r in _metrics(run_dir) if r["kind"] == "train"]
                 if (run_dir / "metrics.jsonl").exists() else [])
        if ckpts and steps and max(steps) >= 6:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run_dir / "summary.json").exists(), "run finished before it was killed"

    resumed = _cli("train", "--resume", "--run-dir", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    steps = [r["step"] for r in _metrics(run_dir) if r["kind"] == "train"]
    assert steps == list(range(1, 17)), steps
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


def test_sigterm_ends_the_run_as_ctrl_c_does(tmp_path):
    """`kill`, `timeout` or a cancelled CI job: the run records that it was interrupted and
    which checkpoint to resume from, and the command says so in one line (exit 130)."""
    run_dir = tmp_path / "terminated"
    args = ["train", "--model", "tiny-llama", "--dataset", "instructions", "--max-steps", "400",
            "--save-steps", "2", "--eval-rows", "0", "--run-dir", str(run_dir), "--set", "max_length=64",
            "--set", "sample_prompts=0", "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli.main", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (run_dir / "checkpoints" / "checkpoint-2" / ".complete").is_file():
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (proc.returncode, err[-2000:])
    assert err.strip().splitlines()[-1] == "workbench train: interrupted" and "Traceback" not in err, err[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and "signal 15" in summary["reason"], summary
    assert 2 <= summary["steps"] < 400 and summary["resume_from"].startswith("checkpoint-"), summary


@pytest.mark.parametrize("args, needle", [
    (["--model", "no-such-model"], "unknown model 'no-such-model'"),
    (["--dataset", "/nonexistent/data.jsonl"], "data.jsonl"),
    (["--set", "max_stepz=3"], "unknown config key in --set 'max_stepz'"),
    (["--set", "max_steps=three"], "max_steps: expected an integer"),
    (["--method", "nope"], "unknown method 'nope'"),
    (["--peft", "nope"], "unknown PEFT type 'nope'"),
    (["--set", "peft.rank=4"], "unknown peft.lora key 'rank'"),
])
def test_bad_input_exits_2_with_one_line_and_no_run_dir(cli, tmp_path, args, needle):
    run_dir = tmp_path / "never"
    proc = cli("train", "--model", "tiny-llama", "--max-steps", "1", "--run-dir", str(run_dir), *args)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert not run_dir.exists()


def test_existing_run_dir_is_not_overwritten(cli, tmp_path):
    run_dir = tmp_path / "taken"
    run_dir.mkdir()
    (run_dir / "keep.txt").write_text("precious")
    proc = cli("train", "--model", "tiny-llama", "--max-steps", "1", "--run-dir", str(run_dir))
    assert proc.returncode == 2 and "already exists" in proc.stderr
    assert (run_dir / "keep.txt").read_text() == "precious"


def test_nan_loss_fails_with_one_line_and_saves_no_broken_weights(cli, tmp_path):
    """The NaN step's update leaves NaN weights. They were saved as final/ (and checkpointed),
    and shift, generate, eval, merge and export then used them without a word: KL nan, empty
    answers, zero scores. Now nothing non-finite is saved, and each command says why not."""
    from workbench.runs.run import resume_step

    run_dir = tmp_path / "nan"
    proc = cli("train", "--model", "tiny-llama", "--peft", "full", "--max-steps", "6", "--eval-rows", "0",
               "--save-steps", "1", "--run-dir", str(run_dir), "--set", "learning_rate=1e300",
               "--set", "max_length=64", "--set", "sample_prompts=0", "--quiet")
    assert proc.returncode == 1, proc.stderr[-2000:]
    nan_step = int(re.search(r"loss became NaN at step (\d+)", proc.stderr)[1])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "weights were no longer finite and were not saved" in summary["reason"]
    assert "weights" not in summary and not (run_dir / "final").exists()
    # At this learning rate step 1's update already makes the weights infinite (the NaN shows in
    # step 2's loss, computed before its update): no checkpoint is kept, each would resume into it.
    assert resume_step(run_dir) == 0 and not list((run_dir / "checkpoints").glob("checkpoint-*"))
    # a resume would replay the same seeded batches into the same NaN: refused, saying what to do
    proc = cli("train", "--resume", "--run-dir", str(run_dir), "--max-steps", "8")
    assert proc.returncode == 2 and "a resume replays the same batches" in proc.stderr \
        and "start a new run with a lower learning_rate" in proc.stderr, proc.stderr
    assert summary["nan_step"] == nan_step and json.loads((run_dir / "summary.json").read_text()) == summary
    for argv in (["shift", "--base", "tiny-llama", "--tuned", str(run_dir), "--prompts", "Hi.", "--out",
                  str(tmp_path / "s.html")],
                 ["generate", "--model", str(run_dir), "--prompts", "Hi."],
                 ["eval", str(run_dir), "--tasks", "wb_arithmetic", "--limit", "1"],
                 ["merge", str(run_dir), str(run_dir), "--out", str(tmp_path / "m")],
                 ["export", str(run_dir), "--out", str(tmp_path / "e")]):
        proc = cli(*argv)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, (argv, proc.stderr)
        assert f"run {run_dir} has no trained weights (no final/ folder): it failed: loss became NaN at step " \
            f"{nan_step}" in proc.stderr, (argv, proc.stderr)


def test_yaml_config_with_flag_and_set_precedence(cli, tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("model: tiny-llama\nmax_steps: 1\nmax_length: 64\neval_rows: 0\nsample_prompts: 0\n"
                   "method_args: {loss_type: dft}\npeft_args: {r: 4}\n")
    run_dir = tmp_path / "yaml-run"
    proc = cli("train", "--config", str(cfg), "--max-steps", "2", "--set", "max_steps=3", "--run-dir", str(run_dir))
    assert proc.returncode == 0, proc.stderr[-2000:]
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["max_steps"] == 3 and saved["method_args"]["loss_type"] == "dft" and saved["peft_args"]["r"] == 4
    assert len([r for r in _metrics(run_dir) if r["kind"] == "train"]) == 3


@pytest.mark.parametrize("text, needle", [
    ("- just\n- a list\n", "expected a mapping of config keys, got list"),
    ("model: [unclosed\n", "not valid YAML"),
    ("max_steps: lots\n", "max_steps: expected an integer"),
])
def test_bad_yaml_config_is_one_line(cli, tmp_path, text, needle):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    proc = cli("train", "--config", str(cfg), "--run-dir", str(tmp_path / "never"))
    assert proc.returncode == 2 and needle in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "never").exists()
