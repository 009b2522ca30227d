"""The forgetting probe's accuracy half: harness tasks the run did not train on, base vs tuned."""
import json

from workbench.analysis.forgetting import _pick_tasks, forgetting, trained_families
from workbench.evaluation import VERIFIABLE_TASKS


def test_auto_picks_the_families_the_run_did_not_train_on(tiny_run, tmp_path):
    assert trained_families(str(tiny_run)) == ("arithmetic",)
    assert _pick_tasks("auto", str(tiny_run)) == [t for t in VERIFIABLE_TASKS if t != "wb_arithmetic"]
    mixed = tmp_path / "mixed"
    (mixed / "final").mkdir(parents=True)
    (mixed / "config.json").write_text(json.dumps({"model": "tiny-llama", "method": "sft", "dataset": "tasks"}))
    assert _pick_tasks("auto", str(mixed)) == []          # trained on every family
    assert _pick_tasks("auto", "tiny-llama") == []       # not a run: nothing known, nothing assumed
    assert _pick_tasks(None, str(tiny_run)) == []


def test_base_vs_tuned_adapter(lora_run):
    """The base shares the run's PEFT model with its adapter disabled: its scores are the plain
    base model's, and the adapter's change shows up in the tuned column."""
    import workbench

    r = forgetting("tiny-llama", str(lora_run), max_texts=4, tasks=["wb_stdlib_docs", "wb_preferences"],
                   task_limit=2)
    acc = r.accuracy.set_index("task")
    assert list(acc.index) == ["wb_stdlib_docs", "wb_preferences"] and (acc["n"] == 2).all()
    alone = workbench.evaluate("tiny-llama", ["wb_stdlib_docs"], limit=2, write=False)
    assert acc.loc["wb_stdlib_docs", "base"] == alone.value("tiny-llama", "wb_stdlib_docs")
    assert acc.loc["wb_stdlib_docs", "tuned"] != acc.loc["wb_stdlib_docs", "base"]
    assert acc.loc["wb_preferences", "base_stderr"] is not None
    s = r.summary()
    assert s["tasks"] == 2 and "task_acc_delta" in s and s["base_ppl"] != s["tuned_ppl"]
    assert len(r.accuracy_figure().data) == 2
