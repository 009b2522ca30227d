"""DPO's eval loss scores each eval batch with the frozen reference once and reuses it: a
later evaluation must not run the reference, and must give exactly what TRL's own path
(reference recomputed every time) gives — for a LoRA run (reference = adapter disabled) and
for full fine-tuning (reference = a frozen copy). The ranking probes take their per-pair
log-probs from that same eval pass (its batches sorted by length, the values put back in row
order): they must equal the probes' own scoring of the pairs."""
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


def _trainer(tmp_path, peft: bool, knobs=NO_PROBES):
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
