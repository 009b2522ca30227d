"""DPO's eval loss scores each eval batch with the frozen reference once and reuses it: a
later evaluation must not run the reference, and must give exactly what TRL's own path
(reference recomputed every time) gives — for a LoRA run (reference = adapter disabled) and
for full fine-tuning (reference = a frozen copy). The ranking probes take their per-pair
log-probs from that same eval pass (its batches sorted by length, the values put back in row
order): they must equal the probes' own scoring of the pairs. At the start of a LoRA run the
policy is its reference bit for bit: the first evaluation reads the reference off the policy's
own forward and skips the KL forwards, and must give exactly what the full computation gives."""
import pytest
import torch
from peft import LoraConfig

from workbench import TrainConfig, data
from workbench.config import dataclass_from_args
from workbench.methods import get_method
from workbench.methods.preference_metrics import encode, sequence_logps
from workbench.models import load_model
from workbench.training.context import TrainContext

NO_PROBES = {"probe_pairs": 0, "probe_kl_prompts": 0, "eval_on_start": False}


def _trainer(tmp_path, peft: bool, knobs=NO_PROBES, moved: bool = True):
    model, tok = load_model("tiny-llama", device="cpu")
    spec = get_method("dpo")
    cfg = TrainConfig(model="tiny-llama", dataset="preferences", method="dpo", peft="lora" if peft else "none",
                      max_steps=1, batch_size=2, max_rows=4, max_length=160, eval_rows=4, save_steps=1000,
                      sample_prompts=0, run_dir=str(tmp_path / "run"))
    ctx = TrainContext(config=cfg, method_config=dataclass_from_args(spec.config_cls, knobs, where="method.dpo"),
                       model=model, tokenizer=tok, train_dataset=data.load("preferences", max_rows=4),
                       eval_dataset=data.load("preferences", split="eval", max_rows=4),
                       peft_config=LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM")
                       if peft else None, output_dir=str(tmp_path / "ckpt"), device="cpu")
    trainer = spec.build_trainer(ctx)
    torch.manual_seed(0)
    if not moved:  # as built: the run's first evaluation, where a LoRA policy is its reference
        return trainer
    with torch.no_grad():  # move the policy away from the reference, as training would
        for name, p in trainer.model.named_parameters():
            if p.requires_grad and (not peft or ".lora_B." in name):
                p.add_(torch.randn_like(p) * 0.05)
    return trainer


@pytest.mark.parametrize("peft", [True, False], ids=["lora", "full"])
def test_cached_reference_equals_recomputed(tmp_path, peft):
    trainer = _trainer(tmp_path, peft)
    first = trainer.evaluate()
    assert len(trainer._eval_ref_logps) == 2  # 4 eval pairs, 2 per batch

    def must_not_run(*a, **k):
        raise AssertionError("the reference ran although its eval log-probs were cached")
    trainer.compute_ref_log_probs = must_not_run
    ref_model = trainer.ref_model
    if ref_model is not None:  # full FT: any forward of the frozen copy would be a recomputation
        hook = ref_model.register_forward_hook(lambda *a: must_not_run())
    cached = trainer.evaluate()
    if ref_model is not None:
        hook.remove()
    del trainer.compute_ref_log_probs

    trainer.cache_eval_reference = False  # TRL's own path: the reference runs inside the loss
    recomputed = trainer.evaluate()
    keys = [k for k in recomputed if k.startswith(("eval_loss", "eval_rewards", "eval_logps"))]
    assert "eval_rewards/margins" in keys and abs(recomputed["eval_rewards/margins"]) > 1e-4  # policy ≠ reference
    for k in keys:
        assert cached[k] == pytest.approx(recomputed[k], rel=1e-5, abs=1e-6), k
        assert first[k] == pytest.approx(recomputed[k], rel=1e-5, abs=1e-6), k


@pytest.mark.parametrize("peft", [True, False], ids=["lora", "full"])
def test_probes_reuse_the_eval_pass_log_probs(tmp_path, peft, monkeypatch):
    import workbench.methods.preference_metrics as pm

    trainer = _trainer(tmp_path, peft, {**NO_PROBES, "probe_pairs": 8})
    with monkeypatch.context() as m:
        m.setattr(pm, "sequence_logps", lambda *a, **k: pytest.fail("the probes scored the pairs again"))
        reused = trainer.evaluate()
    policy_lp, ref_lp = trainer._captured_pair_logps()
    # the pass ran its batches longest first, so the values had to be put back in row order
    assert trainer._eval_order != list(range(4)), trainer._eval_order
    rows, tok = trainer.probe_rows, trainer.processing_class
    seqs = [encode(tok, r["prompt"], resp) for r in rows for resp in (r["chosen"], r["rejected"])]
    assert len(policy_lp) == len(seqs) == 8
    model = trainer.accelerator.unwrap_model(trainer.model).eval()
    torch.testing.assert_close(policy_lp, sequence_logps(model, seqs, max_length=160, pad_id=tok.pad_token_id),
                               rtol=1e-4, atol=1e-3)
    trainer._captured_pair_logps = lambda: None  # the probes score the pairs themselves
    own = trainer.evaluate()
    keys = ["eval_ranking_accuracy", "eval_ref_ranking_accuracy", "eval_heldout_reward_accuracy",
            "eval_idealised_ranking_accuracy", "eval_alignment_gap"]
    assert all(k in reused for k in keys)
    assert {k: reused[k] for k in keys} == {k: own[k] for k in keys}
    assert policy_lp[0::2].ne(ref_lp[0::2]).all()  # the policy moved: the reference values are not the policy's


def test_first_lora_evaluation_reads_the_reference_off_the_policy(tmp_path, monkeypatch):
    import workbench.methods.dpo as dpo
    import workbench.methods.preference_metrics as pm

    knobs = {**NO_PROBES, "probe_pairs": 8, "probe_kl_prompts": 2, "probe_max_new_tokens": 4}
    fast = _trainer(tmp_path / "fast", True, knobs, moved=False)
    with monkeypatch.context() as m:
        m.setattr(fast, "compute_ref_log_probs", lambda *a, **k: pytest.fail("the reference ran a second pass"))
        m.setattr(pm, "sequence_kl", lambda *a, **k: pytest.fail("the KL of identical models was computed"))
        shortcut = fast.evaluate()

    full = _trainer(tmp_path / "full", True, knobs, moved=False)
    with monkeypatch.context() as m:  # the same evaluation, everything computed
        m.setattr(dpo, "adapter_is_identity", lambda model: False)
        m.setattr(pm, "adapter_is_identity", lambda model: False)
        computed = full.evaluate()
    keys = [k for k in computed if not k.endswith(("_runtime", "_per_second", "_time"))]
    assert "eval_kl_to_ref" in keys and "eval_logps/chosen" in keys and "eval_heldout_reward_accuracy" in keys
    assert {k: shortcut[k] for k in keys} == {k: computed[k] for k in keys}
    assert computed["eval_kl_to_ref"] == 0.0 and computed["eval_rewards/margins"] == 0.0
    assert fast._eval_ref_logps.keys() == full._eval_ref_logps.keys()
    for key, (chosen, rejected) in full._eval_ref_logps.items():  # what later evaluations reuse
        assert torch.equal(fast._eval_ref_logps[key][0], chosen) and torch.equal(fast._eval_ref_logps[key][1], rejected)

    with torch.no_grad():  # one step later the policy has moved: the reference runs again
        next(p for n, p in fast.model.named_parameters() if ".lora_B." in n).add_(0.01)
    fast._eval_ref_logps.clear()
    calls = []
    real = type(fast).compute_ref_log_probs
    monkeypatch.setattr(fast, "compute_ref_log_probs", lambda *a: calls.append(1) or real(fast, *a))
    fast.evaluate()
    assert len(calls) == 2  # one per eval batch
