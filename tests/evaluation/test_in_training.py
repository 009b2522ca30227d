"""`eval_tasks` during training: harness scores every eval_steps land in the run as EVAL
records; bad settings are refused before the run directory exists."""
from __future__ import annotations

import pytest

from workbench import TrainConfig, train
from workbench.cli.main import main
from workbench.errors import WorkbenchError
from workbench.runs import Kind

KEY = "harness/wb_arithmetic/exact_match"


def test_harness_scores_are_recorded_at_start_and_every_eval_step(tmp_path):
    cfg = TrainConfig(model="tiny-llama", dataset="instructions", method="sft", max_steps=2, eval_steps=1,
                      eval_rows=0, sample_prompts=0, save_steps=100, run_dir=str(tmp_path / "run"),
                      eval_tasks="wb_arithmetic", eval_tasks_limit=2)
    result = train(cfg)
    evals = [r for r in result.records if r.kind is Kind.EVAL and KEY in r.values]
    assert [r.step for r in evals] == [0, 1, 2]
    assert all(r.values["harness/wb_arithmetic/n"] == 2 and 0 <= r.values[KEY] <= 1 for r in evals)
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count(KEY + '"') == 3


@pytest.mark.parametrize("settings, says", [
    ({"eval_tasks": "no_such_task"}, "no_such_task"),
    ({"eval_tasks": "wb_arithmetic", "eval_tasks_limit": 0}, "eval_tasks_limit"),
    ({"eval_tasks": "wb_arithmetic", "method": "onpolicy-dpo", "dataset": "arithmetic", "max_steps": 4}, "eval_tasks"),
])
def test_bad_eval_tasks_are_refused_before_the_run_exists(tmp_path, settings, says):
    cfg = TrainConfig(**{"model": "tiny-llama", "max_steps": 1, "run_dir": str(tmp_path / "run"), **settings})
    with pytest.raises(WorkbenchError, match=says):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_cli_flag_bad_task_one_line(tmp_path, capsys):
    rc = main(["train", "--model", "tiny-llama", "--max-steps", "1", "--eval-tasks", "nope_task",
               "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "nope_task" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()
