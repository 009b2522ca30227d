"""Compare panel over real run directories; the train panel's background thread with a
real (tiny) training run, stopped from outside like the Stop button does."""
from __future__ import annotations

import time

from widgets.compare import ComparePanel
from workbench.runs.records import MetricsRecord
from workbench.runs.store import RunStore


def _fake_run(root, name, losses, status="completed"):
    store = RunStore(root / name)
    store.create({"model": "tiny-llama", "method": "sft", "peft": "lora"})
    for i, loss in enumerate(losses, 1):
        store.append(MetricsRecord(i, "train", {"loss": loss}))
    store.append(MetricsRecord(len(losses), "eval", {"eval_loss": losses[-1] + 0.1}))
    store.write_summary({"status": status, "steps": len(losses), "train_loss": losses[-1]})


def test_compare_overlays_runs_and_tabulates_final_metrics(tmp_path):
    _fake_run(tmp_path, "a", [3.0, 2.0, 1.0])
    _fake_run(tmp_path, "b", [3.0, 2.5], status="stopped")
    panel = ComparePanel(tmp_path, live=True)
    assert len(panel.picker.options) == 2
    fig, table = panel.compare([str(tmp_path / "a"), str(tmp_path / "b")])
    loss_traces = [t for t in fig.data if t.xaxis in ("x", None)]
    assert sorted(t.name for t in loss_traces) == ["a", "b"]
    assert [list(t.y) for t in loss_traces if t.name == "a"] == [[3.0, 2.0, 1.0]]
    assert "stopped" in table and "1.1" in table  # b's status, a's final eval loss
    assert len(panel.plot_box.children) == 1


def test_train_panel_runs_in_background_and_stops_cleanly(tmp_path):
    from widgets.train_panel import TrainPanel
    from workbench.config import TrainConfig

    cfg = TrainConfig(model="tiny-llama", max_steps=500, eval_rows=0, sample_prompts=0,
                      save_steps=1000, run_dir=str(tmp_path / "run"))
    panel = TrainPanel(lambda: cfg, live=True)
    panel.start()
    assert panel.running and panel.start_button.disabled and not panel.stop_button.disabled
    panel.start()  # a second click while running does nothing
    deadline = time.monotonic() + 120
    while panel.curves.n_points() < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert panel.curves.n_points() >= 2
    panel.stop()
    assert panel.wait(timeout=60)
    assert panel.result.status == "stopped", panel.status.value
    steps = panel.result.summary["steps"]
    assert 2 <= steps < 500
    assert panel.status.value.startswith("stopped at step")
    assert len(panel.curves.loss_fig.data[0].x) == panel.curves.n_points() == steps
    assert not panel.start_button.disabled and panel.stop_button.disabled

    # The Analyze tab probes the stopped run against its base model.
    from widgets.analyze import AnalyzePanel

    analyze = AnalyzePanel(lambda: panel.result, lambda: cfg, live=True)
    analyze.prompts.value, analyze.new_tokens.value = 2, 4
    assert "stopped" in analyze.html()
    shift = analyze.compute_shift(panel.result)
    assert shift is not None and shift.n_tokens > 0, analyze.shift_out.value
    assert "unshifted" in analyze.shift_out.value and len(analyze.plot_box.children) == 1


def test_train_panel_resumes_a_stopped_run_and_trains_a_finished_one_further(tmp_path):
    """The app's Resume: the CLI's --resume and a notebook's train(resume=True) had no button.
    It continues the last run with its own settings, the curve keeps the steps already logged,
    and a completed run grows only when the form asks for more steps."""
    from widgets.train_panel import TrainPanel
    from workbench.config import TrainConfig

    form = TrainConfig(model="tiny-llama", max_steps=40, eval_rows=0, sample_prompts=0, save_steps=1000,
                       run_dir=str(tmp_path / "run"))
    panel = TrainPanel(lambda: form, live=True)
    assert panel.resume_button.disabled  # nothing to resume yet
    panel.start()
    deadline = time.monotonic() + 120
    while panel.curves.n_points() < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    panel.stop()
    assert panel.wait(timeout=60) and panel.result.status == "stopped"
    stopped_at = panel.result.summary["steps"]
    assert not panel.resume_button.disabled

    form.learning_rate = 5.0  # the form changed since: resume keeps the run's own settings
    panel.resume()
    assert panel.wait(timeout=120) and panel.result.status == "completed", panel.status.value
    assert panel.result.summary["steps"] == 40 and panel.result.summary["resumed_from"].endswith(f"-{stopped_at}")
    assert list(panel.curves.loss_fig.data[0].x) == list(range(1, 41))  # continuous, no step twice

    panel.resume()  # completed, and the form asks for no more steps
    assert not panel.running and "raise max_steps" in panel.status.value
    form.max_steps = 42
    panel.resume()
    assert panel.wait(timeout=120) and panel.result.summary["steps"] == 42, panel.status.value


def test_a_run_that_raised_can_be_resumed_from_the_app(tmp_path):
    """A run that failed with an exception left no result in the panel, so Resume stayed off
    though its folder held checkpoints; the panel now names the run folder before training."""
    from widgets.train_panel import TrainPanel
    from workbench.config import TrainConfig
    from workbench.runs.records import Kind

    form = TrainConfig(model="tiny-llama", max_steps=6, eval_rows=0, sample_prompts=0, save_steps=2)
    panel = TrainPanel(lambda: form, live=True)
    record = panel.on_record

    def fails_at_step_3(rec):  # any exception out of training: here a listener's
        record(rec)
        if rec.kind is Kind.TRAIN and rec.step == 3:
            raise OSError("the notebook's disk went away")
    panel.on_record = fails_at_step_3
    panel.start()
    assert panel.wait(timeout=120) and panel.result is None and "disk went away" in panel.status.value
    assert form.run_dir is None  # the form is not changed; the panel's run has its own folder
    assert not panel.resume_button.disabled
    panel.on_record = record
    panel.resume()
    assert panel.wait(timeout=120) and panel.result.status == "completed", panel.status.value
    assert panel.result.summary["steps"] == 6 and panel.result.summary["resumed_from"].endswith("checkpoint-2")
    assert str(panel.result.run_dir).startswith(str(tmp_path / "runs"))


def test_a_run_whose_loss_turns_nan_says_why_in_the_panel_and_the_analyze_tab(tmp_path):
    """The panel said only "failed at step 3"; the Analyze tab then probed the NaN weights."""
    from widgets.analyze import AnalyzePanel
    from widgets.train_panel import TrainPanel
    from workbench.config import TrainConfig

    cfg = TrainConfig(model="tiny-llama", peft="full", max_steps=4, eval_rows=0, sample_prompts=0,
                      learning_rate=1e30, run_dir=str(tmp_path / "run"))
    panel = TrainPanel(lambda: cfg, live=True)
    panel.start()
    assert panel.wait(timeout=120) and panel.result.status == "failed"
    assert "loss became NaN at step" in panel.status.value and "weights were no longer finite" in panel.status.value
    analyze = AnalyzePanel(lambda: panel.result, lambda: cfg, live=True)
    analyze.prompts.value, analyze.new_tokens.value = 2, 4
    assert analyze.compute_shift(panel.result) is None
    assert "has no trained weights (no final/ folder): it failed: loss became NaN" in analyze.shift_out.value
