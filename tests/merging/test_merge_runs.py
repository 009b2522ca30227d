"""Merges of real tiny runs: a run merged with itself (total weight 1) reproduces its
logits under every method; the merged adapter / weights equal the hand-computed sum; the
output is a run directory the rest of the workbench reads; bad input is one line and
leaves nothing behind."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from workbench.cli.main import main
from workbench.merging import merge

SELF = [  # (method, weights, knobs): merging a run with itself, total weight 1
    ("linear", None, {}),
    ("task_arithmetic", [0.5, 0.5], {}),
    ("ties", [1.0, 1.0], {"density": 1.0}),
    ("dare", [0.5, 0.5], {"density": 1.0}),
    ("dare", [1.0, 1.0], {"density": 1.0, "combination": "ties"}),
    ("magnitude_prune", [0.5, 0.5], {"density": 1.0}),
    ("svd", [0.5, 0.5], {}),
    ("cat", [0.5, 0.5], {}),
]


def test_lora_run_merged_with_itself_reproduces_its_logits(runs, logits, tmp_path):
    expected = logits(runs["a"])  # through the workbench's own loader
    assert (expected - logits("tiny-llama")).abs().max() > 1e-3  # the run did move away from its base
    assert torch.allclose(logits(runs["a"], light=True), expected)
    for i, (method, weights, knobs) in enumerate(SELF):
        out = merge([runs["a"], runs["a"]], method, weights=weights, out=tmp_path / f"m{i}", **knobs)
        assert out.status == "completed"
        got = logits(out.run_dir, light=True)
        assert torch.allclose(got, expected, atol=2e-5), (method, knobs, (got - expected).abs().max())
    assert torch.allclose(logits(out.run_dir), expected, atol=2e-5)  # and through load_run_model


def test_full_run_merged_with_itself_reproduces_its_logits(runs, logits, tmp_path):
    for i, (method, weights, knobs) in enumerate(SELF[:3]):
        out = merge([runs["fa"], runs["fa"]], method, weights=weights, out=tmp_path / f"m{i}", **knobs)
        assert torch.allclose(logits(out.run_dir, light=True), logits(runs["fa"]), atol=2e-5), method


def _deltas(run_dir):
    from peft.tuners.lora import LoraLayer

    from workbench.runs import load_run_model

    model, _, _ = load_run_model(run_dir, device="cpu")
    return {n: m.get_delta_weight(m.active_adapters[0]).detach() for n, m in model.named_modules()
            if isinstance(m, LoraLayer) and m.active_adapters[0] in m.lora_A}


def test_lora_linear_merge_is_the_weighted_sum_of_the_adapters_updates(runs, tmp_path):
    out = merge([runs["a"], runs["b"]], "linear", weights=[0.3, 0.7], out=tmp_path / "m")
    da, db, dm = _deltas(runs["a"]), _deltas(runs["b"]), _deltas(out.run_dir)
    assert set(dm) == set(da) and len(dm) > 0
    for name in dm:
        assert torch.allclose(dm[name], 0.3 * da[name] + 0.7 * db[name], atol=1e-6), name


def test_lora_ties_merge_is_ties_of_the_updates_refactored_by_svd(runs, tmp_path):
    from peft.utils.merge_utils import ties

    out = merge([runs["a"], runs["b"]], "ties", density=0.3, out=tmp_path / "m")
    cfg = json.loads((Path(out.run_dir) / "final" / "adapter_config.json").read_text())
    rank = cfg["r"]
    assert rank == 16  # sum of the two sources' ranks (8 + 8)
    da, db, dm = _deltas(runs["a"]), _deltas(runs["b"]), _deltas(out.run_dir)
    for name in dm:
        full = ties([da[name], db[name]], torch.tensor([1.0, 1.0]), 0.3, "total")
        u, s, vh = torch.linalg.svd(full, full_matrices=False)
        best = (u[:, :rank] * s[:rank]) @ vh[:rank]          # the best rank-r approximation, by hand
        assert torch.allclose(dm[name], best, atol=1e-5), name


def test_full_task_arithmetic_is_base_plus_scaled_task_vectors(runs, tmp_path):
    from workbench.merging.full import load_full
    from workbench.models import load_model

    out = merge([runs["fa"], runs["fb"]], "task_arithmetic", weights=[1.0, 0.5], scale=0.8, out=tmp_path / "m")
    base = load_model("tiny-llama")[0].state_dict()
    sa, sb = (load_full(Path(r) / "final").state_dict() for r in (runs["fa"], runs["fb"]))
    sm = load_full(Path(out.run_dir) / "final").state_dict()
    name = "model.layers.1.mlp.down_proj.weight"
    hand = base[name] + 0.8 * ((sa[name] - base[name]) + 0.5 * (sb[name] - base[name]))
    assert not torch.allclose(sa[name], base[name])
    assert torch.allclose(sm[name], hand, atol=1e-6)


def test_merged_run_is_run_shaped_and_records_what_made_it(runs, logits, tmp_path):
    from workbench.analysis.weights import weight_deltas
    from workbench.runs import list_runs, open_run

    out = merge([runs["a"], runs["b"]], "dare", density=0.5, seed=3, out=tmp_path / "runs" / "m")
    info = open_run(out.run_dir)
    m = info.config["merge"]
    assert info.config["model"] == "tiny-llama" and info.config["method"] == "merge:dare"
    assert m["method"] == "dare" and m["weights"] == [1.0, 1.0] and m["peft_combination"] == "dare_linear_svd"
    assert m["knobs"]["density"] == 0.5 and m["knobs"]["seed"] == 3
    assert [s["dataset"] for s in m["sources"]] == ["instructions", "tasks"]
    assert info.summary["status"] == "completed" and info.summary["weights"] == "final"
    assert [r.name for r in list_runs(tmp_path / "runs")] == ["m"]
    assert not [p for p in (tmp_path / "runs").iterdir() if p.name.startswith(".")]  # no temp folder left
    assert len(weight_deltas(str(out.run_dir)).table) > 0  # the weight-delta probe reads it
    again = merge([runs["a"], runs["b"]], "dare", density=0.5, seed=3, out=tmp_path / "again")
    # the seed fixes the random drop
    assert torch.equal(logits(again.run_dir, light=True), logits(out.run_dir, light=True))


def test_greedy_soup_records_its_choices(runs, tmp_path):
    out = merge([runs["a"], runs["b"]], "greedy_soup", eval_rows=4, max_length=32, out=tmp_path / "m")
    m = out.config["merge"]
    assert m["heldout"] == ["instructions", "tasks"]
    assert set(m["kept"]) <= {Path(runs["a"]).name, Path(runs["b"]).name} and m["kept"]
    assert sum(m["weights"]) == pytest.approx(1.0)
    from workbench.runs import open_run

    recs = open_run(out.run_dir).records()
    assert [r.get("kept") for r in recs] == [1, int(len(m["kept"]) == 2)]
    # The soup of the first (best) run alone is that run: its held-out loss is its own.
    assert recs[0].get("heldout_loss") == recs[0].get("candidate_loss")
    assert recs[1].get("kept") == int(recs[1].get("heldout_loss") <= recs[0].get("heldout_loss"))
    with pytest.raises(Exception, match="greedy_soup chooses its own"):
        merge([runs["a"], runs["b"]], "greedy_soup", weights=[0.5, 0.5], out=tmp_path / "w")


def _cli_fails(capsys, argv, match):
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert match in err, err


@pytest.mark.parametrize("extra,match", [
    ([], "needs at least two runs, got 1"),
    (["B", "--method", "median"], "unknown merge method 'median'"),
    (["B", "--weights", "0.5,0.3,0.2"], "--weights has 3 value(s) for 2 runs"),
    (["B", "--weights", "0.5"], "--weights has 1 value(s) for 2 runs"),
    (["B", "--method", "ties", "--density", "0"], "density must be in (0, 1]"),
    (["B", "--method", "dare", "--density", "1.01"], "density must be in (0, 1]"),
    (["B", "--density", "0.5"], "merge method 'linear' has no density knob"),
    (["FB"], "cannot be merged: lora-instructions is a LoRA adapter, full-tasks is full weights"),
    (["FB", "--method", "svd"], "cannot be merged"),
    (["OTHER"], "tuned from different base models"),
    (["B", "--set", "dnsity=0.2", "--method", "ties"], "unknown merge.ties key 'dnsity'"),
    (["B", "--base", "smollm2-135m-instruct"], "--base 'smollm2-135m-instruct' differs from the base"),
    (["B", "--weights", "0,0"], "--weights are all 0"),
    # --set of a flag's knob is that flag: checked like it, and refused next to the flag itself
    (["B", "--method", "ties", "--set", "density=2"], "density must be in (0, 1]"),
    (["B", "--method", "ties", "--set", "density=0.5", "--density", "0.3"], "--set density=… and --density both"),
    (["B", "--set", "method=tis"], "unknown merge method 'tis' (did you mean 'ties'"),
])
def test_bad_input_is_one_line_and_writes_nothing(runs, other_base_run, tmp_path, capsys, extra, match):
    names = {"B": str(runs["b"]), "FB": str(runs["fb"]), "OTHER": str(other_base_run)}
    out = tmp_path / "out" / "merged"
    _cli_fails(capsys, ["merge", str(runs["a"]), *[names.get(x, x) for x in extra], "--out", str(out)], match)
    assert not (tmp_path / "out").exists()


def test_full_runs_refuse_lora_only_methods_and_a_taken_out_dir(runs, tmp_path, capsys):
    _cli_fails(capsys, ["merge", str(runs["fa"]), str(runs["fb"]), "--method", "svd", "--out", str(tmp_path / "o")],
               "works on LoRA runs only")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    _cli_fails(capsys, ["merge", str(runs["a"]), str(runs["b"]), "--out", str(taken)], "not an empty folder")
    assert [p.name for p in taken.iterdir()] == ["keep.txt"]
    assert not (tmp_path / "o").exists()
