"""The Run's lifecycle as a careless or hostile user meets it: two processes on one run,
moved run directories, half-written checkpoints, flags changed on resume, a run killed
during its final save, a disk that fails mid-run, run directories that are files, and
unreadable run metadata. Each test reproduces a defect the hostile-input sweep found."""
import json
import logging
import os
import re
import shutil
import threading
from pathlib import Path

import pytest
import yaml

from workbench import TrainConfig, train
from workbench.cli.main import main
from workbench.errors import WorkbenchError
from workbench.runs import Run, list_runs
from workbench.runs.lock import RunLock

FAST = dict(model="tiny-llama", dataset="instructions", max_length=96, batch_size=2, eval_rows=0,
            sample_prompts=0, save_steps=2)


def _stopped_run(tmp_path, name="run", at=3, **kw) -> Path:
    """A run stopped at step `at` (checkpointed there), ready to resume."""
    stop = threading.Event()

    def stop_at(rec):
        if rec.kind == "train" and rec.step >= at:
            stop.set()

    cfg = TrainConfig(**{**FAST, "max_steps": 8, **kw}, run_dir=str(tmp_path / name))
    result = train(cfg, listeners=[stop_at], stop=stop)
    assert result.status == "stopped" and result.summary["steps"] == at
    return Path(result.run_dir)


def _cli(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()  # drop what earlier steps of the test printed
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _train_steps(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()
            if json.loads(line)["kind"] == "train"]


def test_a_second_process_on_the_same_run_is_refused_and_names_the_holder(tmp_path, capsys):
    run = _stopped_run(tmp_path)
    holder = RunLock(run).acquire()  # the first `--resume`, still training
    try:
        code, _, err = _cli(capsys, "train", "--resume", "--run-dir", str(run))
        assert code == 2
        assert f"in use by another process (pid {os.getpid()})" in _one_line(err)
    finally:
        holder.release()
    assert _train_steps(run) == [1, 2, 3]  # nothing duplicated
    # The holder is gone (its lock released as a dead process's would be): resume proceeds.
    code, _, err = _cli(capsys, "train", "--resume", "--run-dir", str(run), "--quiet")
    assert code == 0, err
    assert _train_steps(run) == list(range(1, 9))


def test_a_run_being_trained_lists_as_running_and_says_so_when_its_weights_are_asked_for(tmp_path, capsys):
    """`workbench runs` showed a run that was training as "interrupted" (it has no summary yet, or
    an earlier session's), and shift/eval/chat said "still training, or stopped or failed"."""
    import fcntl

    run = _stopped_run(tmp_path)
    (tmp_path / "stale").mkdir()  # a killed run: its .lock file names a PID, but no process holds it
    (tmp_path / "stale" / "config.json").write_text(json.dumps({"model": "tiny-llama", "method": "sft"}))
    (tmp_path / "stale" / "metrics.jsonl").write_text("")
    (tmp_path / "stale" / ".lock").write_text("999999\n")
    holder = RunLock(run).acquire()  # `--resume` of the stopped run, training now: its summary is gone
    summary = (run / "summary.json").read_bytes()
    (run / "summary.json").unlink()
    try:
        code, out, _ = _cli(capsys, "runs", "--root", str(tmp_path))
        assert code == 0 and re.search(r"^run\s+running\s+sft\s+lora\s+tiny-llama\s+3\s+\d", out, re.M), out
        assert re.search(r"^stale\s+interrupted\s", out, re.M), out
        shutil.rmtree(run / "final", ignore_errors=True)
        code, _, err = _cli(capsys, "generate", "--model", str(run), "--prompts", "Hi")
        assert code == 2 and f"has no trained weights (no final/ folder): it is training now (pid {os.getpid()})" \
            in _one_line(err)
    finally:
        holder.release()
        (run / "summary.json").write_bytes(summary)
    assert {r.name: r.status for r in list_runs(tmp_path)} == {"run": "stopped", "stale": "interrupted"}
    # a listing's momentary shared lock does not turn a new holder away
    fd = os.open(run / ".lock", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)
    threading.Timer(0.05, lambda: os.close(fd)).start()
    RunLock(run).acquire().release()


def test_a_stale_lock_file_from_a_dead_process_does_not_block(tmp_path):
    run = _stopped_run(tmp_path)
    (run / ".lock").write_text("999999\n")  # left by a killed process: the kernel lock is gone
    cfg = TrainConfig(**FAST, max_steps=8, run_dir=str(run))
    assert train(cfg, resume=True).status == "completed"


def test_resume_continues_exactly_the_directory_given_even_when_moved(tmp_path, monkeypatch, capsys):
    first_cwd = tmp_path / "a"
    first_cwd.mkdir()
    monkeypatch.chdir(first_cwd)
    _stopped_run(Path("."), name="rel-run")           # config.json records the relative run_dir "rel-run"
    moved = tmp_path / "elsewhere" / "moved-run"
    moved.parent.mkdir()
    shutil.move(str(first_cwd / "rel-run"), moved)
    decoy = first_cwd / "rel-run"                     # a *different* run with the old relative name
    _stopped_run(first_cwd, name="rel-run", at=2)
    monkeypatch.chdir(tmp_path)
    code, _, err = _cli(capsys, "train", "--resume", "--run-dir", str(moved), "--quiet")
    assert code == 0, err
    assert _train_steps(moved) == list(range(1, 9))
    assert json.loads((moved / "summary.json").read_text())["status"] == "completed"
    assert _train_steps(decoy) == [1, 2] and not (decoy / "summary.json").read_text().count("completed")


def test_a_half_written_checkpoint_is_skipped_and_named(tmp_path, caplog):
    run = _stopped_run(tmp_path, at=3)  # checkpoints 2 and 3, both complete
    ckpts = run / "checkpoints"
    (ckpts / "checkpoint-5").mkdir()    # kill -9 as the folder appeared
    truncated = ckpts / "checkpoint-4"  # a file-size limit cut the save short
    shutil.copytree(ckpts / "checkpoint-3", truncated)
    (truncated / ".complete").unlink(missing_ok=True)
    (truncated / "trainer_state.json").write_text('{"global_st')
    with caplog.at_level(logging.WARNING, logger="workbench"):
        result = train(TrainConfig(**FAST, max_steps=8, run_dir=str(run)), resume=True)
    assert result.status == "completed" and result.summary["resumed_from"].endswith("checkpoint-3")
    assert "skipping incomplete checkpoint checkpoint-4" in caplog.text
    assert "skipping incomplete checkpoint checkpoint-5" in caplog.text
    assert _train_steps(run) == list(range(1, 9))


def test_resume_refuses_changed_settings_and_records_a_new_max_steps(tmp_path, capsys):
    run = _stopped_run(tmp_path, max_steps=6)
    for flag, value, named in (("--learning-rate", "5", "learning_rate"), ("--batch-size", "8", "batch_size"),
                               ("--set", "method.loss_type=dft", "method_args.loss_type"),
                               ("--set", "peft.r=4", "peft_args.r")):
        code, _, err = _cli(capsys, "train", "--resume", "--run-dir", str(run), flag, value)
        assert code == 2 and f"{named} cannot change on resume (the run has " in _one_line(err)
    # The command line that started the run, run again with --resume: its values are the run's own
    # (this was refused: "--model cannot change on --resume").
    saved = json.loads((run / "config.json").read_text())
    same = ["--model", saved["model"], "--dataset", saved["dataset"], "--max-length", str(saved["max_length"]),
            "--set", f"peft.r={saved['peft_args']['r']}"]
    code, _, err = _cli(capsys, "train", *same, "--resume", "--run-dir", str(run), "--max-steps", "7", "--quiet")
    assert code == 0, err
    config = json.loads((run / "config.json").read_text())
    assert config["max_steps"] == 7 and config["resumes"] == [{"at_step": 3, "max_steps": [6, 7]}]
    assert config["learning_rate"] == FAST.get("learning_rate", TrainConfig().learning_rate)
    assert json.loads((run / "summary.json").read_text())["steps"] == 7
    # A completed run grows only with a larger max_steps.
    code, _, err = _cli(capsys, "train", "--resume", "--run-dir", str(run))
    assert code == 2 and "already completed 7 steps" in _one_line(err)


def test_resume_from_python_refuses_a_config_that_differs_from_the_runs(tmp_path):
    """A notebook's train(cfg, resume=True) with another learning rate or LoRA rank trained the
    checkpoint under settings config.json did not record; now it is one line, nothing touched."""
    run = _stopped_run(tmp_path, max_steps=6)
    before = {name: (run / name).read_text() for name in ("config.json", "metrics.jsonl", "summary.json")}
    for change, message in (({"learning_rate": 0.5}, "learning_rate cannot change on resume (the run has 0.0002"),
                            ({"peft_args": {"r": 4}}, "peft_args.r cannot change on resume (the run has 8, asked 4)"),
                            ({"batch_size": 1}, "batch_size cannot change on resume")):
        with pytest.raises(WorkbenchError, match=re.escape(message)):
            train(TrainConfig(**{**FAST, "max_steps": 6, **change}, run_dir=str(run)), resume=True)
    assert {name: (run / name).read_text() for name in before} == before
    # The same settings (defaults left implicit, as config.json fills them in) and a larger max_steps resume.
    result = train(TrainConfig(**FAST, max_steps=7, run_dir=str(run)), resume=True)
    assert result.status == "completed" and _train_steps(run) == list(range(1, 8))


def test_a_run_killed_during_its_final_save_resumes_without_training_past_max_steps(tmp_path):
    cfg = TrainConfig(**FAST, max_steps=4, run_dir=str(tmp_path / "run"))
    run = Path(train(cfg).run_dir)
    shutil.rmtree(run / "final")              # killed while final/ was being written
    (run / "summary.json").unlink()
    result = train(cfg, resume=True)
    assert result.status == "completed" and result.summary["steps"] == 4
    assert _train_steps(run) == [1, 2, 3, 4]
    assert (run / "final" / "adapter_model.safetensors").is_file()
    assert (run / "final" / "tokenizer_config.json").is_file()


def test_final_holds_no_pickles(tmp_path):
    run = Path(train(TrainConfig(**FAST, max_steps=2, run_dir=str(tmp_path / "run"))).run_dir)
    names = {p.name for p in (run / "final").iterdir()}
    assert "adapter_model.safetensors" in names
    assert not {n for n in names if Path(n).suffix in {".bin", ".pt", ".pth", ".pkl"}}, names


def test_a_write_failing_mid_run_marks_it_failed_with_the_reason(tmp_path, capsys):
    run = tmp_path / "run"

    def disk_full(rec):
        if rec.kind == "train" and rec.step == 3:
            raise OSError(28, "No space left on device", str(run / "metrics.jsonl"))

    with pytest.raises(OSError):
        train(TrainConfig(**FAST, max_steps=6, run_dir=str(run)), listeners=[disk_full])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and "No space left on device" in summary["reason"]
    assert summary["steps"] == 3 and summary["resume_from"] == "checkpoint-2"
    # The lock went with the failed run: it resumes.
    assert train(TrainConfig(**FAST, max_steps=6, run_dir=str(run)), resume=True).status == "completed"


def test_a_really_full_disk_is_one_line_and_the_run_is_marked_failed(tmp_path):
    """A real full disk: a 4 MB tmpfs in a private mount namespace, a full fine-tuning run whose
    first checkpoint (~40 MB) cannot fit. safetensors raised its own error type there, which
    reached the user as a traceback."""
    import subprocess
    import sys

    disk = tmp_path / "disk"
    disk.mkdir()
    workbench = Path(sys.executable).with_name("workbench")
    script = ('mount -t tmpfs -o size=4M tmpfs "$1" || exit 99; "$2" train --model tiny-llama --dataset instructions '
              '--peft full --max-length 128 --batch-size 2 --eval-rows 0 --sample-prompts 0 --max-steps 2 '
              '--save-steps 1 --quiet --run-dir "$1/run"; echo "rc=$?"; cat "$1/run/summary.json"')
    try:
        done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh",
                               str(disk), str(workbench)], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"})
    except FileNotFoundError:
        pytest.skip("no unshare(1) here to mount a small file system")
    if done.returncode == 99 or "rc=" not in done.stdout:
        pytest.skip(f"cannot mount a tmpfs in a user namespace here: {done.stderr.strip()[-200:]}")
    rc, summary = done.stdout.split("\n", 1)
    errors = [ln for ln in done.stderr.splitlines() if "error" in ln.lower() or "Traceback" in ln]
    assert rc == "rc=1" and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert len(errors) == 1 and "no space left on device while writing" in errors[0] and "/run" in errors[0]
    assert "--resume --run-dir" in errors[0]
    summary = json.loads(summary)
    assert summary["status"] == "failed" and "No space left on device" in summary["reason"]


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_text("not a dir"), "is a file, not a directory"),
    (lambda p: (p.parent / "blocker").write_text("x"), "cannot create run directory"),
])
def test_run_dir_that_cannot_be_a_directory_is_one_line(tmp_path, capsys, make, message):
    target = tmp_path / "target"
    make(target)
    run_dir = target if target.exists() else tmp_path / "blocker" / "run"
    code, _, err = _cli(capsys, "train", "--model", "tiny-llama", "--max-steps", "1", "--run-dir", str(run_dir))
    assert code == 2 and message in _one_line(err)


def test_create_refuses_a_non_empty_directory_and_keeps_it(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    (d / "notes.txt").write_text("mine")
    with pytest.raises(WorkbenchError, match="already exists and is not empty"):
        Run.create(d, {"max_steps": 1})
    assert (d / "notes.txt").read_text() == "mine" and not (d / "config.json").exists()


def test_unreadable_config_or_summary_is_marked_and_the_others_still_list(tmp_path, capsys):
    root = tmp_path / "runs"
    good = Path(train(TrainConfig(**FAST, max_steps=1, run_dir=str(root / "good"))).run_dir)
    for name, broken in (("bad-summary", "summary.json"), ("bad-config", "config.json")):
        shutil.copytree(good, root / name)
        (root / name / broken).write_text("{not json")
    runs = {r.name: r for r in list_runs(root)}
    assert runs["good"].status == "completed"
    assert runs["bad-summary"].status == runs["bad-config"].status == "unreadable"
    code, out, err = _cli(capsys, "runs", "--root", str(root))
    assert code == 0, err
    assert "good" in out and "completed" in out and out.count("unreadable") >= 2
    code, _, err = _cli(capsys, "shift", "--base", "tiny-llama", "--tuned", str(root / "bad-config"),
                          "--prompts", "instructions")
    assert code == 2 and "config.json" in _one_line(err)
    # A run directory itself, given as PATH or --root, lists that run (it read "no runs under good").
    for argv in (["runs", str(root / "good")], ["runs", "--root", str(root / "good")],
                 ["runs", str(root / "good"), str(root / "bad-summary")]):
        code, out, err = _cli(capsys, *argv)
        assert code == 0 and out.splitlines()[1].startswith("good ") and "bad-config" not in out, (argv, out, err)
    assert "bad-summary" in out
    code, _, err = _cli(capsys, "runs", str(root / "nosuch"))
    assert code == 2 and "does not exist" in _one_line(err)
    # An export beside the runs holds transformers' config.json: it is no run (it listed as 'interrupted').
    assert _cli(capsys, "export", str(root / "good"), "--out", str(root / "exported"))[0] == 0
    assert "exported" not in {r.name for r in list_runs(root)}
    code, out, _ = _cli(capsys, "runs", str(root / "exported"))
    assert "unreadable" in out and "is a model folder" in out and "interrupted" not in out


def test_stop_file_from_another_process_stops_and_resume_finishes(tmp_path):
    run = tmp_path / "run"

    def touch_stop(rec):
        if rec.kind == "train" and rec.step == 2:
            (run / "STOP").touch()

    first = train(TrainConfig(**FAST, max_steps=5, run_dir=str(run)), listeners=[touch_stop])
    assert first.status == "stopped" and first.summary["steps"] == 2
    assert (run / "checkpoints" / "checkpoint-2" / ".complete").is_file()
    second = train(TrainConfig(**FAST, max_steps=5, run_dir=str(run)), resume=True)
    assert second.status == "completed" and _train_steps(run) == [1, 2, 3, 4, 5]
    assert second.summary["first_train_loss"] == first.summary["first_train_loss"]


def test_train_takes_a_mapping_or_a_yaml_file_as_the_cli_does(tmp_path):
    """What a notebook naturally passes: a dict of TrainConfig keys, or the YAML file the CLI's
    --config reads (both were AttributeError: 'dict' object has no attribute 'device')."""
    result = train({**FAST, "max_steps": 1, "run_dir": str(tmp_path / "from-dict")})
    assert result.status == "completed"
    assert json.loads((tmp_path / "from-dict" / "config.json").read_text())["max_length"] == 96
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({**FAST, "max_steps": 1, "run_dir": str(tmp_path / "from-yaml")}))
    assert train(str(path)).status == "completed"
    for bad, message in (({"learnig_rate": 1}, "unknown config key in train() 'learnig_rate' (did you mean"),
                         (None, "train() takes a TrainConfig, a mapping of its keys or a YAML file, got NoneType"),
                         (tmp_path / "missing.yaml", "does not exist")):
        with pytest.raises(WorkbenchError, match=re.escape(message)):
            train(bad)


def test_a_local_model_and_data_given_relative_are_recorded_absolute(tmp_path, monkeypatch, capsys):
    """config.json and the adapter named `--model my-model` as given, so the run's base could not
    be found from any other folder: `generate --model RUN` said "unknown model 'my-model'"."""
    from workbench.models import ensure_cached

    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copytree(ensure_cached("tiny-llama"), work / "my-model")
    (work / "rows.jsonl").write_text("".join(json.dumps({"prompt": f"Say {w}.", "completion": f" {w}"}) + "\n"
                                             for w in ("one", "two", "three", "four")))
    monkeypatch.chdir(work)
    code, _, err = _cli(capsys, "train", "--model", "my-model", "--dataset", "rows.jsonl", "--max-steps", "2",
                        "--eval-rows", "0", "--sample-prompts", "0", "--save-steps", "1", "--run-dir", "run")
    assert code == 0, err
    saved = json.loads((work / "run" / "config.json").read_text())
    assert (saved["model"], saved["dataset"]) == (str(work / "my-model"), str(work / "rows.jsonl"))
    adapter = json.loads((work / "run" / "final" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(work / "my-model")
    monkeypatch.chdir(elsewhere)
    code, _, err = _cli(capsys, "generate", "--model", str(work / "run"), "--prompts", "Say five.",
                        "--set", "max_new_tokens=2")
    assert code == 0, err
    code, _, err = _cli(capsys, "train", "--resume", "--run-dir", str(work / "run"), "--max-steps", "3")
    assert code == 0 and _train_steps(work / "run") == [1, 2, 3], err
    # A run recorded before (relative names) still resumes from the folder it names them from.
    saved = json.loads((work / "run" / "config.json").read_text())
    (work / "run" / "config.json").write_text(json.dumps({**saved, "model": "my-model", "dataset": "rows.jsonl"}))
    monkeypatch.chdir(work)
    code, _, err = _cli(capsys, "train", "--resume", "--run-dir", "run", "--max-steps", "4")
    assert code == 0 and _train_steps(work / "run") == [1, 2, 3, 4], err
