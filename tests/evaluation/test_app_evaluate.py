"""The Analyze tab's Evaluate section on a real (tiny) run, and its buttons' labels."""
import json
import shutil
from types import SimpleNamespace

from widgets.analyze import AnalyzePanel


def test_evaluate_section_base_vs_tuned(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    result = SimpleNamespace(run_dir=run, status="completed", records=[], summary={})
    panel = AnalyzePanel(lambda: result, lambda: SimpleNamespace(model="tiny-llama", dataset="arithmetic"), live=False)
    # every button is as wide as its label (ipywidgets' default fixed width cut "Summarise las…")
    for b in (panel.summary_button, panel.shift_button, panel.eval_button):
        assert b.layout.width == "auto"
    panel.eval_tasks.value, panel.eval_limit.value = ("wb_preferences",), 2
    ev = panel.compute_eval(result)
    assert ev is not None, panel.eval_out.value
    assert panel.eval_bar.value == panel.eval_bar.max == 2 and panel.eval_bar.bar_style == "success"
    table = panel.eval_out.value
    assert "wb_preferences" in table and "base: tiny-llama" in table and " ± " in table
    assert json.loads((run / "eval" / "wb_preferences.json").read_text())["n"] == 2
    # HumanEval without the tick: refused in the panel, nothing run
    panel.eval_tasks.value = ("wb_humaneval",)
    assert panel.compute_eval(result) is ev and "tick" in panel.eval_out.value
    assert panel.eval_bar.bar_style == "danger" and not (run / "eval" / "wb_humaneval.json").exists()
