"""Widget components against real records, run directories and config dataclasses."""
from __future__ import annotations

import pytest

from widgets.config_form import ConfigForm
from widgets.display import is_headless
from widgets.live_curves import LiveCurves
from widgets.progress import Progress
from workbench.config import TrainConfig
from workbench.errors import UnknownNameError, WorkbenchError
from workbench.methods import get_method
from workbench.reports import final_values, series
from workbench.runs.records import Kind, MetricsRecord


def test_form_from_method_dataclass_returns_only_changes():
    cls = get_method("sft").config_cls
    form = ConfigForm(cls)
    assert form.values() == {}
    assert type(form.inputs["loss_type"]).__name__ == "Dropdown"  # metadata choices
    assert list(form.inputs["loss_type"].options) == ["nll", "dft"]
    form.inputs["loss_type"].value = "dft"
    form.inputs["packing"].value = True
    assert form.values() == {"loss_type": "dft", "packing": True}


def test_train_config_form_round_trips_and_parses_yaml_fields():
    form = ConfigForm(TrainConfig)
    assert TrainConfig.from_dict(form.values(changed_only=False)) == TrainConfig()
    form.inputs["max_rows"].value = "12"             # Optional[int] edited as text
    form.inputs["selection"].value = "{strategy: longest, fraction: 0.5}"
    assert form.values() == {"max_rows": 12, "selection": {"strategy": "longest", "fraction": 0.5}}
    form.inputs["max_rows"].value = "twelve"
    with pytest.raises(WorkbenchError, match="max_rows"):
        form.values()
    form.inputs["selection"].value = "{unclosed"
    with pytest.raises(WorkbenchError, match="TrainConfig.selection.*not valid YAML"):
        form._read("selection")
    with pytest.raises(UnknownNameError, match="max_stepz"):
        form.set_values({"max_stepz": 3})


def test_peft_form_skips_bookkeeping_fields():
    from widgets.pickers import PeftPicker

    picker = PeftPicker("lora", {"r": 4})
    assert "peft_type" not in picker.form.inputs and "r" in picker.form.inputs
    assert picker.args()["r"] == 4
    picker.input.value = "full"
    assert picker.args() == {}


def test_workbench_config_reflects_pickers_and_rejects_bad_keys():
    from widgets import Workbench

    app = Workbench(model="tiny-llama", max_steps=7, method_args={"loss_type": "dft"},
                    peft_args={"r": 4}, headless=False)
    cfg = app.config()
    assert (cfg.model, cfg.max_steps, cfg.method_args["loss_type"], cfg.peft_args["r"]) == \
        ("tiny-llama", 7, "dft", 4)
    app.settings.inputs["learning_rate"].value = 1e-3
    app.model.input.value = "gemma3-270m"
    cfg = app.config()
    assert (cfg.learning_rate, cfg.model) == (1e-3, "gemma3-270m")
    assert "base model, 270M parameters" in app.model.info.value
    with pytest.raises(UnknownNameError, match="max_stepz"):
        Workbench(model="tiny-llama", max_stepz=3, headless=False)
    with pytest.raises(UnknownNameError, match="method 'sftt'"):
        Workbench(model="tiny-llama", method="sftt", headless=False)


def test_live_curves_fill_loss_and_show_preference_panel_only_when_needed():
    curves = LiveCurves(live=True, min_interval=0.0)
    for step in range(1, 4):
        curves.add(MetricsRecord(step, "train", {"loss": 3.0 - step * 0.5, "learning_rate": 1e-4}))
    curves.add(MetricsRecord(3, "eval", {"eval_loss": 2.2}))
    assert list(curves.loss_fig.data[0].y) == [2.5, 2.0, 1.5]
    assert list(curves.loss_fig.data[1].x) == [3]
    assert curves.pref_box.layout.display == "none" and len(curves.figures()) == 1
    curves.add(MetricsRecord(4, "train", {"loss": 1.0, "rewards/margins": 0.3, "rewards/chosen": 0.1}))
    assert curves.pref_box.layout.display == "flex"
    by_name = {t.name: t for t in curves.pref_fig.data}
    assert list(by_name["rewards/margins"].y) == [0.3] and list(by_name["eval_kl_to_ref"].x) == []
    assert len(curves.figures()) == 2
    curves.reset()
    assert len(curves.loss_fig.data[0].x) == 0


def test_live_curves_throttle_redraws_but_keep_every_record():
    curves = LiveCurves(live=True, min_interval=3600)
    curves.add(MetricsRecord(1, "train", {"loss": 2.0}))  # first record draws (no previous draw)
    curves.add(MetricsRecord(2, "train", {"loss": 1.0}))
    assert len(curves.loss_fig.data[0].x) == 1 and curves.n_points() == 2
    curves.redraw()
    assert len(curves.loss_fig.data[0].x) == 2


def test_progress_reports_rate_and_eta():
    p = Progress()
    p.add(MetricsRecord(0, "event", {"event": "start", "max_steps": 10}))
    p._t0 -= 4.0  # pretend 4 s have passed
    p.add(MetricsRecord(2, "train", {"loss": 1.0, "tokens_per_s": 1234.0}))
    assert p.bar.value == 2 and p.bar.max == 10
    assert "2/10" in p.label.value and "0.50 steps/s" in p.label.value and "ETA 00:16" in p.label.value
    assert "1,234 tokens/s" in p.readout.value and "RSS" in p.readout.value


def test_series_and_final_values_skip_missing_and_non_numeric():
    recs = [MetricsRecord(1, "train", {"loss": 2.0}), MetricsRecord(2, "train", {"loss": None}),
            MetricsRecord(2, "sample", {"loss": 9.0}), MetricsRecord(3, "eval", {"eval_loss": 1.5})]
    assert series(recs, "loss") == ([1], [2.0])
    assert final_values(recs, {"train_loss": 1.9}) == {"loss": 2.0, "eval_loss": 1.5}


def test_headless_detection_follows_the_environment(monkeypatch):
    monkeypatch.setenv("WORKBENCH_HEADLESS", "0")
    assert not is_headless()
    monkeypatch.setenv("WORKBENCH_HEADLESS", "1")
    assert is_headless()
    monkeypatch.delenv("WORKBENCH_HEADLESS")
    assert is_headless()  # plain Python: no notebook front end


def test_live_curves_show_harness_scores_when_eval_tasks_report():
    curves = LiveCurves(live=True, min_interval=0.0)
    curves.add(MetricsRecord(1, Kind.TRAIN, {"loss": 2.0}))
    assert curves.harness_box.layout.display == "none"
    for step, acc in ((0, 0.25), (2, 0.5)):
        curves.add(MetricsRecord(step, Kind.EVAL, {"harness/wb_arithmetic/exact_match": acc,
                                                   "harness/wb_arithmetic/exact_match_stderr": 0.1,
                                                   "harness/wb_arithmetic/n": 4}))
    assert curves.harness_box.layout.display == "flex"
    (trace,) = curves.harness_fig.data
    assert trace.name == "wb_arithmetic/exact_match"
    assert list(trace.x) == [0, 2] and list(trace.y) == [0.25, 0.5] and list(trace.error_y.array) == [0.1, 0.1]
    assert len(curves.figures()) == 2  # loss + harness, for static output too
