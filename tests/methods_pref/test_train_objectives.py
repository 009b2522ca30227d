"""Every preference objective trains a few steps of tiny-llama through the real engine
(TRL trainers, run store, records). max_rows = batch_size, so every step sees the same
batch and 'the loss moves the right way' is a clean check: the last step's loss is below
the first step's (measured before any update). At step 0 the policy *is* the starting
model (LoRA B = 0, or a frozen copy), so the probes and TRL's first-step values are
checked against numbers computed here by hand from the starting model: ranking accuracy
from its own log-probs, the idealised ranking accuracy from the reference log-probs
(Chen et al., Thm. 3.1), KL exactly 0, each loss type's value at a zero margin."""
import dataclasses
import json
import math

import pytest
import torch

from workbench import TrainConfig, train
from workbench.config import dataclass_from_args
from workbench.engine import plan
from workbench.errors import WorkbenchError
from workbench.methods import get_method
from workbench.methods.preference_metrics import encode, sample_responses
from workbench.models import load_model
from workbench.models.sampling import fast_sampling

PROBES = {"probe_pairs": 8, "probe_kl_prompts": 2, "probe_max_new_tokens": 4}
MAX_LENGTH = 160


@pytest.fixture(scope="module")
def base():
    """The starting model every run below begins from (and the reference of every run)."""
    model, tok = load_model("tiny-llama", device="cpu")
    model.eval()
    return model, tok


def _logp(model, tok, prompt, response, max_length=MAX_LENGTH) -> float:
    """Total log π(response | prompt), one unpadded sequence, truncated like the run."""
    p, r = encode(tok, prompt, response)
    ids, n_prompt = (p + r)[:max_length], len(p)
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].double(), -1)
    return sum(float(logp[t, ids[t + 1]]) for t in range(n_prompt - 1, len(ids) - 1))


def _pairs(rows):
    """(prompt, better, worse) written out here: chosen/rejected, or every higher- vs lower-scored response."""
    out = []
    for r in rows:
        if "chosen" in r:
            out.append((r["prompt"], r["chosen"], r["rejected"]))
        else:
            sc = r["scores"]
            out += [(r["prompt"], r["responses"][i], r["responses"][j])
                    for i in range(len(sc)) for j in range(len(sc)) if sc[i] > sc[j]]
    return out[:PROBES["probe_pairs"]]


def _margins(model, tok, rows):
    return [_logp(model, tok, x, w) - _logp(model, tok, x, lose) for x, w, lose in _pairs(rows)]


def _hand_kl(policy, ref, prompt_ids, resp_ids) -> float:
    ids = torch.tensor([prompt_ids + resp_ids])
    with torch.no_grad():
        p = torch.softmax(policy(input_ids=ids).logits[0].double(), -1)
        q = torch.softmax(ref(input_ids=ids).logits[0].double(), -1)
    return sum(float((p[t] * (p[t].log() - q[t].log())).sum())
               for t in range(len(prompt_ids) - 1, len(prompt_ids) + len(resp_ids) - 1))


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


def _config(tmp_path, method, dataset, args, steps=4, peft="lora", rows=2, lr=5e-3, eval_rows=None):
    return TrainConfig(model="tiny-llama", dataset=dataset, method=method, peft=peft, max_steps=steps,
                       learning_rate=lr, batch_size=rows, max_rows=rows, max_length=MAX_LENGTH,
                       eval_rows=eval_rows or rows, eval_steps=steps, save_steps=1000, sample_prompts=0,
                       run_dir=str(tmp_path / "run"), method_args={**PROBES, **args})


def _run(tmp_path, *a, **kw):
    return train(_config(tmp_path, *a, **kw))


@pytest.mark.parametrize("method,dataset,args", CASES, ids=[f"{m}-{json.dumps(a)}" for m, _, a in CASES])
def test_objective_trains_and_logs(tmp_path, ranked_file, base, method, dataset, args):
    model, tok = base
    rows = 4 if method in ("kto", "bco") else 2  # unpaired: both labels in the batch
    cfg = _config(tmp_path, method, ranked_file if dataset == "ranked" else dataset, args, rows=rows, eval_rows=4)
    eval_rows = list(plan(cfg).eval_dataset)   # the rows the probes score
    result = train(cfg)
    assert result.status == "completed", result.summary
    train_recs = [r for r in result.records if r.kind == "train" and r.get("loss") is not None]
    evals = [r for r in result.records if r.kind == "eval"]
    assert len(train_recs) == 4 and len(evals) == 2      # eval before the first step and at the end
    assert train_recs[-1].get("loss") < train_recs[0].get("loss")
    start, end = evals[0], evals[-1]
    # KL (exact over the vocabulary): policy == reference at step 0 gives exactly 0; after 4 steps at lr 5e-3
    # the policy has moved, so it is > 0 (a wrong reference fails one of the two); SE over the 2 samples
    assert start.get("eval_kl_to_ref") == pytest.approx(0.0, abs=1e-6)
    assert end.get("eval_kl_to_ref") > 1e-6
    if len({json.dumps(r["prompt"]) for r in eval_rows}) >= 2:  # two samples: a standard error (0 at the start)
        assert start.get("eval_kl_to_ref_se") == pytest.approx(0.0, abs=1e-6) and end.get("eval_kl_to_ref_se") >= 0
    else:
        assert "eval_kl_to_ref_se" not in end.values
    if method not in ("kto", "bco"):
        # ranking accuracy at step 0 = the starting model's, computed here from its own log-probs
        margins = _margins(model, tok, eval_rows)
        assert len(margins) >= 2
        hand = sum(m > 0 for m in margins) / len(margins)
        assert start.get("eval_ranking_accuracy") == pytest.approx(hand, abs=1e-6)
        if "eval_ref_ranking_accuracy" in end.values:  # the reference never moves: still the starting model's
            assert end.get("eval_ref_ranking_accuracy") == pytest.approx(hand, abs=1e-6)
        if method == "dpo":  # plain DPO: idealised ranking accuracy (β = 0.1, α = 0.75 by default) from the
            # reference's log-probs; constant through training, since the reference is
            ideal = sum(math.exp(m) > (0.25 / 0.75) ** (1 / 0.1) for m in margins) / len(margins)
            for rec in (start, end):
                assert rec.get("eval_idealised_ranking_accuracy") == pytest.approx(ideal, abs=1e-6)
                assert rec.get("eval_alignment_gap") == pytest.approx(ideal - rec.get("eval_ranking_accuracy"),
                                                                      abs=1e-6)
        else:  # no DPO optimum (RPO adds an SFT term, LN-DPO normalises, others are not DPO): no idealised figure
            assert "eval_idealised_ranking_accuracy" not in end.values
    if method == "dpo":
        # TRL's logps/chosen at the first step (before any update) = the starting model's mean total
        # log-prob of the chosen responses of the (only) training batch
        train_rows = list(plan(cfg).train_dataset)
        hand = sum(_logp(model, tok, r["prompt"], r["chosen"]) for r in train_rows) / len(train_rows)
        assert train_recs[0].get("logps/chosen") == pytest.approx(hand, rel=1e-4)
    stored = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [s["eval_kl_to_ref"] for s in stored if "eval_kl_to_ref" in s] == \
        [start.get("eval_kl_to_ref"), end.get("eval_kl_to_ref")]


LOG2 = math.log(2)
# Each TRL loss at a zero margin (policy == reference at the first step), β = 0.1, written from the papers'
# formulas: hinge max(0, 1 − βΔ); IPO (Δ − 1/(2β))²; EXO (ε = 1e-3) KL([½, ½] ‖ [1 − ε, ε]); NCA
# −log σ(r_w) − ½ log σ(−r_w) − ½ log σ(−r_l); BCO-pair −log σ(r_w) − log σ(−r_l); SPPO (r_w − 1/(2β))² +
# (r_l + 1/(2β))²; APO-zero (1 − σ(r_w)) + σ(r_l); APO-down σ(r_w) + 1 − σ(r_w − r_l); DiscoPOP
# ½·log 2 + ½·e⁰; the rest are −log σ(0).
ZERO_MARGIN_LOSS = {
    "hinge": 1.0, "ipo": 25.0, "exo_pair": 0.5 * (math.log(0.5) - math.log(1 - 1e-3)) + 0.5 * (math.log(0.5)
                                                                                               - math.log(1e-3)),
    "nca_pair": 2 * LOG2, "robust": LOG2, "bco_pair": 2 * LOG2, "sppo_hard": 50.0, "aot": LOG2,
    "aot_unpaired": LOG2, "apo_zero": 1.0, "apo_down": 1.0, "discopop": 0.5 * LOG2 + 0.5, "sigmoid_norm": LOG2,
}


@pytest.mark.parametrize("loss_type", list(ZERO_MARGIN_LOSS))
def test_every_trl_dpo_loss_type_trains(tmp_path, loss_type):
    args = {"loss_type": loss_type, "probe_pairs": 0, "probe_kl_prompts": 0, "eval_on_start": False}
    if loss_type == "exo_pair":
        args["label_smoothing"] = 1e-3
    cfg = TrainConfig(model="tiny-llama", dataset="preferences", method="dpo", peft="lora", max_steps=2,
                      learning_rate=5e-3, batch_size=2, max_rows=2, max_length=160, eval_rows=0, save_steps=1000,
                      sample_prompts=0, run_dir=str(tmp_path / "run"), method_args=args)
    result = train(cfg)
    assert result.status == "completed"
    recs = [r for r in result.records if r.kind == "train" and r.get("loss") is not None]
    assert len(recs) == 2 and all(math.isfinite(r.get("loss")) for r in recs)
    # first step, before any update: policy == reference, every margin 0 → the loss's closed form, and no pair
    # counts as won (TRL's accuracy is chosen reward > rejected reward, strictly)
    assert recs[0].get("loss") == pytest.approx(ZERO_MARGIN_LOSS[loss_type], rel=1e-4)
    assert recs[0].get("rewards/accuracies") == 0.0


def test_full_finetuning_uses_frozen_reference_copy(tmp_path, base):
    """Full fine-tuning: the reference is a frozen copy of the starting model. At the end the
    probe's KL equals the exact KL, computed here, between the saved final model and the
    starting model on the probe's own samples, and the reference ranking accuracy is still
    the starting model's — both fail if the reference moved with the policy or is another model."""
    model, tok = base
    # fp32: under the CPU's default bf16 autocast the in-run forward differs from the fp32 one here by ~0.5%
    cfg = dataclasses.replace(_config(tmp_path, "dpo", "preferences", {}, steps=2, peft="full", lr=1e-4, eval_rows=4),
                              precision="fp32")
    p = plan(cfg)
    eval_rows = list(p.eval_dataset)
    result = train(cfg)
    assert result.status == "completed"
    start, end = [r for r in result.records if r.kind == "eval"]
    assert start.get("eval_kl_to_ref") == 0.0  # the frozen copy is bit-identical to the policy at step 0
    final, _ = load_model(str(result.run_dir / "final"), device="cpu")
    final.eval()
    prompts = []
    for r in eval_rows:  # the probe's prompts: distinct, in order
        if r["prompt"] not in prompts:
            prompts.append(r["prompt"])
    with fast_sampling():  # the probe's token draw on the CPU (workbench/models/sampling.py)
        samples = sample_responses(final, tok, prompts[:PROBES["probe_kl_prompts"]], PROBES["probe_max_new_tokens"],
                                   seed=cfg.seed + 2)  # the probe's seed at step 2
    hand = [_hand_kl(final, model, pi, ri) for pi, ri in samples]
    assert end.get("eval_kl_to_ref") == pytest.approx(sum(hand) / len(hand), rel=1e-3, abs=1e-6)
    assert end.get("eval_kl_to_ref") > 0
    margins = _margins(model, tok, eval_rows)
    assert end.get("eval_ref_ranking_accuracy") == pytest.approx(sum(m > 0 for m in margins) / len(margins))


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
