"""A sweep's `search:` block runs an Optuna study: 4 trials on 2 workers, the one known-bad
trial pruned through the run's own STOP (stopped early, checkpointed, resumable), the report
with the study's history and importances; a bad search block is one line and writes nothing."""
from __future__ import annotations

import json
import shutil

import pytest
import yaml

from workbench.cli.main import main
from workbench.runs import open_run
from workbench.runs.run import complete_checkpoints
from workbench.sweeps.search import suggest

SHARED = {"model": "tiny-llama", "max_steps": 6, "eval_steps": 2, "eval_rows": 4, "sample_prompts": 0}
# Untrained, tiny-llama's eval loss is ~10.8458; a learning rate of 1e-6 leaves it there, while
# 3e-3..1e-2 brings it below 10.845 by the first eval (step 2). A threshold pruner therefore
# prunes exactly the enqueued 1e-6 trial, whatever runs beside it: deterministic on 2 workers.
SEARCH = {"metric": "eval_loss", "direction": "minimize", "n_trials": 4, "sampler": "random", "seed": 0,
          "space": {"learning_rate": {"low": 3e-3, "high": 1e-2, "log": True},
                    "peft.r": {"low": 4, "high": 8, "step": 4}},
          "pruner": {"name": "threshold", "upper": 10.845},
          "enqueue": [{"learning_rate": 1e-6, "peft.r": 4}]}


def _write(tmp_path, spec) -> str:
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


@pytest.mark.slow
def test_search_of_four_trials_prunes_the_bad_one(tmp_path, capsys):
    sweep = _write(tmp_path, {"template": "train_run.ipynb", "workers": 2, "engine": "dask",
                              "parameters": SHARED, "search": SEARCH})
    out = tmp_path / "out"
    assert main(["sweep", sweep, "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "4/4 trials succeeded (1 pruned)" in printed and "best: trial " in printed

    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage
    from optuna.trial import TrialState

    study = optuna.load_study(study_name="workbench-sweep",
                              storage=JournalStorage(JournalFileBackend(str(out / "optuna.journal"))))
    trials = sorted(study.trials, key=lambda t: t.number)
    assert [t.state for t in trials] == [TrialState.PRUNED] + [TrialState.COMPLETE] * 3
    assert trials[0].params == {"learning_rate": 1e-6, "peft.r": 4}
    assert all(3e-3 <= t.params["learning_rate"] <= 1e-2 and t.params["peft.r"] in (4, 8) for t in trials[1:])
    assert all(t.value < 10.845 for t in trials[1:])

    # The pruned trial's run was stopped by its STOP file: early, checkpointed, resumable.
    pruned_run = next(out.glob("000-*/run"))
    info = open_run(pruned_run)
    assert info.summary["status"] == "stopped" and info.summary["steps"] < SHARED["max_steps"]
    assert complete_checkpoints(pruned_run / "checkpoints")[0], "a stopped run keeps a checkpoint to resume from"
    assert json.loads((pruned_run / "config.json").read_text())["peft_args"]["r"] == 4  # peft.r reached peft_args
    for run in out.glob("00[123]-*/run"):
        assert open_run(run).summary["status"] == "completed"

    report = (out / "report.html").read_text()
    assert "Search (Optuna)" in report and "4 trials (3 complete, 1 pruned, 0 fail)" in report
    assert "<td>pruned</td>" in report and report.count("<td>completed</td>") == 3
    assert "Optimization History" in report and "Hyperparameter Importances" in report

    # The same search again into its folder: the study is complete, nothing runs, the report stays whole
    # (it ran 4 more trials, re-suggesting the same parameters, and reported only those).
    folders = sorted(p.name for p in out.iterdir())
    assert main(["sweep", sweep, "-o", str(out), "--engine", "local"]) == 0  # no cluster to start for nothing
    captured = capsys.readouterr()
    assert "4 of 4 trials finished earlier" in captured.err and "4/4 trials succeeded (1 pruned)" in captured.out
    assert sorted(p.name for p in out.iterdir()) == folders
    assert "4 trials (3 complete, 1 pruned, 0 fail)" in (out / "report.html").read_text()

    # A coordinator stopped mid-trial leaves that trial RUNNING in the study (made here as Optuna
    # records it: asked, never told), its folder holding a stopped, checkpointed run. One more
    # trial asked for: the interrupted one runs again in its folder and its run resumes.
    interrupted = out / "004-interrupted"
    shutil.copytree(pruned_run.parent, interrupted)
    study.enqueue_trial({"learning_rate": 1e-6, "peft.r": 4})
    stale = study.ask()
    suggest(stale, SEARCH["space"])
    stale.set_user_attr("folder", interrupted.name)
    more = {**SEARCH, "n_trials": 5, "pruner": "none"}
    sweep = _write(tmp_path, {"template": "train_run.ipynb", "workers": 2, "parameters": SHARED, "search": more})
    assert main(["sweep", sweep, "-o", str(out)]) == 0
    assert "4 of 5 trials finished earlier" in capsys.readouterr().err
    resumed = json.loads((interrupted / "run" / "summary.json").read_text())
    assert resumed["status"] == "completed" and resumed["resumed_from"].endswith(f"-{info.summary['steps']}")
    records = [json.loads(line) for line in (interrupted / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == list(range(1, SHARED["max_steps"] + 1))
    assert sorted(p.name for p in out.iterdir()) == sorted([*folders, interrupted.name])  # no new folder
    study = optuna.load_study(study_name="workbench-sweep",
                              storage=JournalStorage(JournalFileBackend(str(out / "optuna.journal"))))
    assert [t.state for t in study.trials][4:] == [TrialState.FAIL, TrialState.COMPLETE]
    assert "6 trials (4 complete, 1 pruned, 1 fail)" in (out / "report.html").read_text()

    # Another search into the same folder: one line, the study untouched.
    other = {"template": "train_run.ipynb", "parameters": {**SHARED, "max_steps": 7}, "search": more}
    assert main(["sweep", _write(tmp_path, other), "-o", str(out)]) == 2
    assert "holds another search (differs in: parameters)" in capsys.readouterr().err
    assert len(optuna.load_study(study_name="workbench-sweep", storage=JournalStorage(
        JournalFileBackend(str(out / "optuna.journal")))).trials) == 6


def test_numbers_written_as_people_write_them_are_numbers(tmp_path, capsys):
    """PyYAML's YAML 1.1 read `1e-4` (no dot) as a string: the space was refused as 'needs numbers'."""
    sweep = tmp_path / "s.yaml"
    sweep.write_text("template: train_run.ipynb\nparameters: {max_steps: 2, learning_rate: 5e-4}\n"
                     "search:\n  metric: eval_loss\n  n_trials: 2\n"
                     "  space:\n    learning_rate: {low: 1e-4, high: 1E-3, log: true}\n")
    assert main(["sweep", str(sweep), "--dry-run"]) == 0, capsys.readouterr().err
    from workbench.sweeps import load_sweep

    spec = load_sweep(sweep)
    assert spec.search.space["learning_rate"] == {"low": 1e-4, "high": 1e-3, "log": True}
    assert spec.parameters["learning_rate"] == 5e-4


def test_bad_search_blocks_are_one_line_and_write_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    cases = [
        ({**SEARCH, "metric": "eval_los"}, "unknown search.metric", "'eval_los'"),
        ({**SEARCH, "sampler": "grid"}, "unknown search.sampler", "random, tpe"),
        ({**SEARCH, "pruner": "hyperband"}, "unknown search.pruner", "median, none, threshold"),
        ({**SEARCH, "pruner": {"name": "median", "warmup": 2}}, "search.pruner median", "warmup"),
        ({**SEARCH, "space": {"lr": [1, 2]}}, "parameter of train_run.ipynb 'lr'"),
        ({**SEARCH, "space": {"learning_rate": {"low": 0, "high": 1, "log": True}}}, "log: true needs low > 0"),
        ({**SEARCH, "n_trials": 0}, "n_trials must be an integer >= 1"),
        ({**SEARCH, "enqueue": [{"seed": 1}]}, "not in search.space"),
    ]
    for search, *needles in cases:
        sweep = _write(tmp_path, {"template": "train_run.ipynb", "parameters": SHARED, "search": search})
        assert main(["sweep", sweep, "-o", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and all(n in err for n in needles), err
    sweep = _write(tmp_path, {"template": "train_run.ipynb", "search": SEARCH, "grid": {"peft": ["lora"]}})
    assert main(["sweep", sweep, "-o", str(out)]) == 2
    assert "either 'search' or 'grid'/'list'" in capsys.readouterr().err
    assert not out.exists()
