"""DPO's eval loss scores each eval batch with the frozen reference once and reuses it: a
later evaluation must not run the reference, and must give exactly what TRL's own path
(reference recomputed every time) gives — for a LoRA run (reference = adapter disabled) and
for full fine-tuning (reference = a frozen copy)."""
import pytest
import torch
from peft import LoraConfig

from workbench import TrainConfig, data
from workbench.config import dataclass_from_args
from workbench.methods import get_method
from workbench.models import load_model
from workbench.training.context import TrainContext

NO_PROBES = {"probe_pairs": 0, "probe_kl_prompts": 0, "eval_on_start": False}


def _trainer(tmp_path, peft: bool):
    model, tok = load_model("tiny-llama", device="cpu")
    spec = get_method("dpo")
    cfg = TrainConfig(model="tiny-llama", dataset="preferences", method="dpo", peft="lora" if peft else "none",
                      max_steps=1, batch_size=2, max_rows=4, max_length=160, eval_rows=4, save_steps=1000,
                      sample_prompts=0, run_dir=str(tmp_path / "run"))
    ctx = TrainContext(config=cfg, method_config=dataclass_from_args(spec.config_cls, NO_PROBES, where="method.dpo"),
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
