"""The real harness on real models: built-in tasks, results in the run store, bad input."""
import json
import shutil

import pytest

from workbench.cli.main import main
from workbench.evaluation import EvalConfig
from workbench.runs.lock import RunLock


def _check_scores(result, model, n):
    t = result.table(all_metrics=True)
    assert set(t["task"]) == {"wb_arithmetic", "wb_preferences"}
    assert (t["n"] == n).all() and (t["model"] == model).all()
    acc = t[(t.task == "wb_preferences") & (t.metric == "acc")].iloc[0]
    assert 0.0 <= acc.value <= 1.0 and acc.stderr is not None and acc.stderr >= 0
    em = t[(t.task == "wb_arithmetic") & (t.metric == "exact_match")].iloc[0]
    assert 0.0 <= em.value <= 1.0
    assert {"acc", "acc_norm"} <= set(t[t.task == "wb_preferences"].metric)


def test_tiny_llama_two_builtin_tasks(monkeypatch, tmp_path, capfd):
    import torch.utils.collect_env
    from lm_eval import evaluator

    import workbench

    # simple_evaluate's environment report (11 subprocesses a call) is not collected, and the
    # harness's own add_env_info is back in place afterwards. Nor does it run `git describe`,
    # which outside a git repository printed "fatal: not a git repository" on the terminal.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no repository above either
    reports = []
    monkeypatch.setattr(torch.utils.collect_env, "get_pretty_env_info", lambda: reports.append(1) or "report")
    real, real_git = evaluator.add_env_info, evaluator.get_git_commit_hash
    result = workbench.evaluate("tiny-llama", ["wb_arithmetic", "wb_preferences"], limit=3, write=False)
    assert reports == [] and evaluator.add_env_info is real and evaluator.get_git_commit_hash is real_git
    assert "not a git repository" not in capfd.readouterr().err
    _check_scores(result, "tiny-llama", 3)
    s = result.scores[0]
    assert s.versions["lm_eval"].startswith("0.4") and s.versions["task"] == 1.0
    storage = {}
    evaluator.add_env_info(storage)  # the real one, outside an evaluation: it reports
    assert reports == [1] and storage["pretty_env_info"] == "report"


@pytest.mark.slow
def test_smollm2_two_builtin_tasks():
    import workbench

    result = workbench.evaluate("smollm2-135m-instruct", ["wb_arithmetic", "wb_preferences"], limit=8, write=False)
    _check_scores(result, "smollm2-135m-instruct", 8)
    # A real instruct model prefers the chosen answers of the built-in pairs more often than not.
    assert result.value("smollm2-135m-instruct", "wb_preferences", "acc") >= 0.5


def test_run_dir_gets_eval_files_and_records(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    out = tmp_path / "out"
    rc = main(["eval", str(run), "tiny-llama", "--tasks", "wb_stdlib_docs", "--limit", "2", "--out", str(out)])
    assert rc == 0
    doc = json.loads((run / "eval" / "wb_stdlib_docs.json").read_text())
    assert doc["task"] == "wb_stdlib_docs" and doc["n"] == 2 and doc["limit"] == 2
    assert doc["metric"] == "word_perplexity" and doc["value"] > 1
    assert {"byte_perplexity", "bits_per_byte"} <= set(doc["metrics"]) and doc["versions"]["lm_eval"]
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    ev = [r for r in recs if r["kind"] == "eval"]
    assert len(ev) == 1 and ev[0]["step"] == 3
    assert ev[0]["harness/wb_stdlib_docs/bits_per_byte"] == pytest.approx(doc["metrics"]["bits_per_byte"]["value"])
    assert ev[0]["harness/wb_stdlib_docs/n"] == 2
    # the base model (not a run) went under --out, with the summary across both
    assert (out / "tiny-llama" / "eval" / "wb_stdlib_docs.json").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert {r["model"] for r in summary["table"]} == {str(run), "tiny-llama"}
    assert "tiny-llama" in (out / "summary.md").read_text()


def _one_line_exit_2(capsys, argv):
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and err.splitlines()[-1].startswith("workbench eval: error:"), err
    return errors[0]


def test_bad_input_one_line_exit_2_nothing_written(tiny_run, tmp_path, capsys):
    out = tmp_path / "out"
    base = ["--out", str(out)]
    assert "unknown task 'no_such_task'" in _one_line_exit_2(
        capsys, ["eval", "tiny-llama", "--tasks", "wb_arithmetic,no_such_task", *base])
    assert "unknown task 'wb_arithmetc' (did you mean 'wb_arithmetic'?)" in _one_line_exit_2(
        capsys, ["eval", "tiny-llama", "--tasks", "wb_arithmetc", *base])
    assert "--limit must be ≥ 1" in _one_line_exit_2(
        capsys, ["eval", "tiny-llama", "--tasks", "wb_arithmetic", "--limit", "0", *base])
    assert "unknown model" in _one_line_exit_2(capsys, ["eval", "no-such-model", "--tasks", "wb_arithmetic", *base])
    assert "--allow-code-execution" in _one_line_exit_2(
        capsys, ["eval", "tiny-llama", "--tasks", "wb_humaneval", *base])
    broken = tmp_path / "broken"
    shutil.copytree(tiny_run, broken)
    (broken / "final" / "model.safetensors").write_bytes(b"not weights")
    assert "cannot be loaded" in _one_line_exit_2(
        capsys, ["eval", str(broken), "--tasks", "wb_preferences", "--limit", "1", *base])
    assert not out.exists()
    assert not (broken / "eval").exists()
    # a run another process holds is refused, before any evaluation, and left untouched
    held = tmp_path / "held"
    shutil.copytree(tiny_run, held)
    before = (held / "metrics.jsonl").read_text()
    lock = RunLock(held).acquire()
    try:
        assert "in use by another process" in _one_line_exit_2(
            capsys, ["eval", str(held), "--tasks", "wb_preferences", "--limit", "1"])
    finally:
        lock.release()
    assert (held / "metrics.jsonl").read_text() == before and not (held / "eval").exists()
    # --out naming a run directory would overwrite the run's summary.json with the eval table
    files = {p: p.read_bytes() for p in held.rglob("*") if p.is_file()}
    assert "is a run directory" in _one_line_exit_2(
        capsys, ["eval", "tiny-llama", "--tasks", "wb_arithmetic", "--limit", "1", "--out", str(held)])
    assert {p: p.read_bytes() for p in held.rglob("*") if p.is_file()} == files
    from workbench.runs.records import Kind, MetricsRecord
    from workbench.runs.run import Run

    with Run.create(tmp_path / "training", {"model": "tiny-llama"}) as run:  # interrupted: no final/ yet
        run.emit(MetricsRecord(1, Kind.TRAIN, {"loss": 1.0}))
    assert "is a run directory" in _one_line_exit_2(
        capsys, ["eval", "tiny-llama", "--tasks", "wb_arithmetic", "--out", str(tmp_path / "training")])
    assert not (tmp_path / "training" / "summary.json").exists()


def test_config_refuses_bad_knobs():
    from workbench.errors import WorkbenchError

    for bad in ({"limit": 0}, {"limit": 0.5}, {"batch_size": 0}, {"chat_template": "maybe"}, {"tasks": [""]}):
        with pytest.raises(WorkbenchError):
            EvalConfig(**bad).validate()
    assert EvalConfig(tasks="verifiable").validate().tasks[0] == "wb_arithmetic"
    assert "wb_humaneval" not in EvalConfig(tasks="builtin").validate().tasks
    assert EvalConfig(tasks="builtin", allow_code_execution=True).validate().tasks[-1] == "wb_humaneval"


@pytest.mark.slow
def test_hub_task_offline_is_one_line(capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    err = _one_line_exit_2(capsys, ["eval", "tiny-llama", "--tasks", "hellaswag", "--limit", "2"])
    assert "not available offline" in err


def test_urial_prompt_reaches_the_harness():
    from workbench.analysis.prompts import URIAL_SYSTEM
    from workbench.analysis.resolve import resolve_side
    from workbench.evaluation.harness import make_lm

    side = resolve_side("urial:tiny-llama")
    chat = make_lm(side, EvalConfig(tasks=["wb_preferences"]))
    assert URIAL_SYSTEM in chat.apply_chat_template([{"role": "user", "content": "Hi?"}])
    plain = make_lm(side, EvalConfig(tasks=["wb_preferences"], chat_template="off"))
    assert plain._plain_prefix.startswith("# Instruction") and URIAL_SYSTEM in plain._plain_prefix
    assert not make_lm(resolve_side("tiny-llama"), EvalConfig(chat_template="off"))._plain_prefix
