"""The Compare tab on real tiny runs: what differs, Merge (method knobs from the method's
config dataclass) → the merged run listed and selected, Export, Analyze of the selected run,
and the run list following a TrainPanel."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from widgets.compare import ComparePanel, config_differences


def test_compare_merges_exports_and_analyses_selected_runs(runs, tmp_path):
    root = tmp_path / "runs"
    for key in ("a", "b"):
        shutil.copytree(runs[key], root / Path(runs[key]).name)
    panel = ComparePanel(root, live=False)
    a, b = (str(root / Path(runs[k]).name) for k in ("a", "b"))
    assert len(panel.picker.value) == 1  # the newest run is preselected
    assert panel.merge_button.disabled  # one run: nothing to merge

    panel.picker.value = (a, b)
    assert not panel.merge_button.disabled and panel.export_button.disabled
    diff = config_differences(panel.selected())
    assert diff["dataset"] == {"lora-instructions": "instructions", "lora-tasks": "tasks"}
    assert "run_dir" not in diff and "model" not in diff
    assert "what differs" in panel.diff.value and "tasks" in panel.diff.value

    panel.merge_method.value = "ties"  # the form is TiesArgs': density, sign election, LoRA mode, rank
    assert set(panel.merge_form.inputs) == {"density", "majority_sign_method", "lora_mode", "svd_rank"}
    panel.merge_form.inputs["density"].value = 0.4
    panel.merge_weights.value = "0.7, 0.3"
    merged = panel.start_merge()
    assert merged is not None, panel.merge_status.value
    assert panel.picker.value == (str(merged.run_dir),) and Path(merged.run_dir).parent == root
    cfg = json.loads((Path(merged.run_dir) / "config.json").read_text())
    assert cfg["merge"]["knobs"]["density"] == 0.4 and cfg["merge"]["weights"] == [0.7, 0.3]
    assert str(merged.run_dir) in [v for _, v in panel.picker.options]

    target = panel.analyze_selected()  # the Analyze panel, pointed at the merged run
    assert target is not None and str(merged.run_dir) in panel.analyze.html()
    assert panel.analyze.get_config().model == "tiny-llama"

    panel.export_out.value = str(tmp_path / "exported")
    assert panel.export_dtype.disabled  # a GGUF tensor type: off for safetensors, and not passed
    panel.export_format.value = "gguf"
    assert not panel.export_dtype.disabled
    panel.export_dtype.value = "f16"
    panel.export_format.value = "safetensors"
    exported = panel.start_export()
    assert exported is not None, panel.export_status.value
    assert (tmp_path / "exported" / "model.safetensors").is_file() and "read back" in panel.export_status.value

    panel.picker.value = (a, b)
    panel.merge_method.value = "linear"
    panel.merge_weights.value = "1,2,3"
    assert panel.start_merge() is None and "--weights has 3 value(s) for 2 runs" in panel.merge_status.value


def test_run_list_follows_the_train_panel(tmp_path):
    from widgets.train_panel import TrainPanel
    from workbench.config import TrainConfig

    root = tmp_path / "runs"
    compare = ComparePanel(root, live=False)
    assert compare.picker.options == ()
    cfg = TrainConfig(model="tiny-llama", max_steps=2, eval_rows=0, sample_prompts=0, max_rows=8, batch_size=2,
                      max_length=64, run_dir=str(root / "fresh"))
    panel = TrainPanel(lambda: cfg, live=False)
    seen = []
    compare.picker.observe(lambda ch: seen.append((ch["new"], (root / "fresh" / "summary.json").exists())),
                           names="value")
    compare.follow(panel)
    panel.run_sync(show=False)
    assert compare.picker.value == (str(root / "fresh"),)
    assert seen and seen[0] == ((str(root / "fresh"),), False)  # selected at START, before the run finished
    assert compare.picker.options[0][0].endswith("completed")
