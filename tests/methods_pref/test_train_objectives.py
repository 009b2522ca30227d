"""Every preference objective trains a few steps of tiny-llama through the real engine
(TRL trainers, run store, records). max_rows = batch_size, so every step sees the same
batch and 'the loss moves the right way' is a clean check: the last step's loss is below
the first step's (measured before any update); the probes reach the records."""
import json

import pytest

from workbench import TrainConfig, train
from workbench.config import dataclass_from_args
from workbench.errors import WorkbenchError
from workbench.methods import get_method

PROBES = {"probe_pairs": 8, "probe_kl_prompts": 1, "probe_max_new_tokens": 4}


@pytest.fixture(scope="module")
def ranked_file(tmp_path_factory):
    """A small ranked dataset from the built-in pairs: chosen (2) > rejected (1) > another
    prompt's rejected answer (0)."""
    from workbench import data

    rows = list(data.load("preferences", format="preference", max_rows=8))
    path = tmp_path_factory.mktemp("ranked") / "ranked.jsonl"
    with path.open("w") as f:
        for i, r in enumerate(rows):
            other = rows[(i + 1) % len(rows)]["rejected"]
            f.write(json.dumps({"prompt": r["prompt"], "responses": [r["chosen"], r["rejected"], other],
                                "scores": [2, 1, 0]}) + "\n")
    return str(path)


CASES = [
    ("dpo", "preferences", {}),
    ("rpo", "preferences", {}),
    ("ln-dpo", "preferences", {}),
    ("kto", "preferences", {}),
    ("bco", "preferences", {}),
    ("orpo", "preferences", {}),
    ("cpo", "preferences", {}),
    ("simpo", "preferences", {}),
    ("asft", "preferences", {}),
    ("aft", "ranked", {}),
    ("aft", "ranked", {"constraint": False}),
    ("lipo", "ranked", {}),
]


def _run(tmp_path, method, dataset, args, steps=4, peft="lora", rows=2, lr=5e-3):
    cfg = TrainConfig(model="tiny-llama", dataset=dataset, method=method, peft=peft, max_steps=steps,
                      learning_rate=lr, batch_size=rows, max_rows=rows, max_length=160, eval_rows=rows,
                      eval_steps=steps, save_steps=1000, sample_prompts=0, run_dir=str(tmp_path / "run"),
                      method_args={**PROBES, **args})
    return train(cfg)


@pytest.mark.parametrize("method,dataset,args", CASES, ids=[f"{m}-{json.dumps(a)}" for m, _, a in CASES])
def test_objective_trains_and_logs(tmp_path, ranked_file, method, dataset, args):
    rows = 4 if method in ("kto", "bco") else 2  # unpaired: both labels in the batch
    result = _run(tmp_path, method, ranked_file if dataset == "ranked" else dataset, args, rows=rows)
    assert result.status == "completed", result.summary
    train_recs = [r for r in result.records if r.kind == "train" and r.get("loss") is not None]
    evals = [r for r in result.records if r.kind == "eval"]
    assert len(train_recs) == 4 and len(evals) == 2      # eval before the first step and at the end
    assert train_recs[-1].get("loss") < train_recs[0].get("loss")
    # TRL's preference metrics and our probes reach the records (and so the run store)
    assert any(k.startswith("logps/") for k in train_recs[-1].values)
    assert "eval_kl_to_ref" in evals[-1].values and "eval_sample_length" in evals[-1].values
    assert evals[0].get("eval_kl_to_ref") == pytest.approx(0.0, abs=1e-4)  # policy == reference at start
    if method not in ("kto", "bco"):
        assert 0.0 <= evals[-1].get("eval_ranking_accuracy") <= 1.0
    stored = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any("eval_kl_to_ref" in s for s in stored)


@pytest.mark.parametrize("loss_type", ["hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard",
                                       "aot", "aot_unpaired", "apo_zero", "apo_down", "discopop", "sigmoid_norm"])
def test_every_trl_dpo_loss_type_trains(tmp_path, loss_type):
    args = {"loss_type": loss_type, "probe_pairs": 0, "probe_kl_prompts": 0, "eval_on_start": False}
    if loss_type == "exo_pair":
        args["label_smoothing"] = 1e-3
    cfg = TrainConfig(model="tiny-llama", dataset="preferences", method="dpo", peft="lora", max_steps=2,
                      learning_rate=5e-3, batch_size=2, max_rows=2, max_length=160, eval_rows=0, save_steps=1000,
                      sample_prompts=0, run_dir=str(tmp_path / "run"), method_args=args)
    result = train(cfg)
    assert result.status == "completed"
    losses = [r.get("loss") for r in result.records if r.kind == "train" and r.get("loss") is not None]
    assert len(losses) == 2 and all(loss == loss for loss in losses)  # finite, not NaN
    assert any("rewards/accuracies" in r.values for r in result.records if r.kind == "train")


def test_full_finetuning_uses_frozen_reference_copy(tmp_path):
    result = _run(tmp_path, "dpo", "preferences", {}, steps=2, peft="full", lr=1e-4)
    assert result.status == "completed"
    evals = [r for r in result.records if r.kind == "eval"]
    assert evals[-1].get("eval_kl_to_ref") != 0.0 and "eval_ref_ranking_accuracy" in evals[-1].values


def test_precomputed_reference_log_probs(tmp_path):
    result = _run(tmp_path, "dpo", "preferences", {"precompute_ref_log_probs": True}, steps=2)
    assert result.status == "completed"
    assert any("rewards/chosen" in r.values for r in result.records if r.kind == "train")


@pytest.mark.parametrize("method,args,needle", [
    ("dpo", {"loss_type": "sigmoid,nope"}, "unknown method.loss_type 'nope'"),
    ("dpo", {"loss_type": "sigmoid,sft", "loss_weights": "1"}, "1 weights for 2 loss types"),
    ("dpo", {"loss_type": "exo_pair"}, "exo_pair needs"),
    ("kto", {"loss_type": "dpo"}, "unknown method.loss_type"),
    ("simpo", {"beta": -1}, "beta must be positive"),
])
def test_bad_knobs_fail_with_one_line(method, args, needle):
    with pytest.raises(WorkbenchError) as e:
        dataclass_from_args(get_method(method).config_cls, args, where=f"method.{method}")
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_bad_knob_leaves_no_run_directory(tmp_path):
    cfg = TrainConfig(model="tiny-llama", dataset="preferences", method="dpo", run_dir=str(tmp_path / "run"),
                      method_args={"loss_type": "bogus"})
    with pytest.raises(WorkbenchError):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_every_preference_method_has_a_card():
    for name in ("dpo", "rpo", "ln-dpo", "kto", "bco", "orpo", "cpo", "simpo", "asft", "aft", "lipo"):
        spec = get_method(name)
        assert spec.family == "preference"
        assert spec.card.startswith("# ") and "## Formula" in spec.card, name
