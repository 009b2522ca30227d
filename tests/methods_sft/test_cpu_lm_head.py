"""The CPU LM head (workbench/methods/trainers/cpu_lm_head.py) returns what TRL's fused LM
head returns — values and gradients — on a real model, and is installed by the engine."""
import pytest
import torch
from trl.trainer.utils import add_fused_lm_head

from workbench.models import load_model
from workbench.training.cpu_lm_head import entropy_in_loss, replace_fused_head

ALL = ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1")


def _batch(tok):
    enc = tok(["The capital of France is Paris.", "Two plus two is four, not five or six."],
              return_tensors="pt", padding=True)
    labels = enc["input_ids"].clone()
    labels[:, :3] = -100                         # a prompt
    labels[enc["attention_mask"] == 0] = -100    # padding
    return enc, labels


def _run(model, enc, labels, **kw):
    model.zero_grad()
    out = model(**enc, labels=labels, fused_lm_head=True, **kw)
    (out.loss + out.entropy.sum() * 0.1).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out, grads


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_same_outputs_and_gradients_as_trl(temperature):
    model, tok = load_model("tiny-llama", device="cpu")
    model.float()
    add_fused_lm_head(model, temperature=temperature, outputs=ALL)
    enc, labels = _batch(tok)
    ref, ref_grads = _run(model, enc, labels)
    assert replace_fused_head(model)
    out, grads = _run(model, enc, labels)
    assert torch.equal(out.label_mask, ref.label_mask)
    for k in ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits"):
        torch.testing.assert_close(getattr(out, k), getattr(ref, k), atol=2e-5, rtol=1e-5, msg=k)
    assert torch.equal(out.is_top1, ref.is_top1)
    torch.testing.assert_close(out.loss, ref.loss, atol=1e-6, rtol=1e-6)
    assert grads.keys() == ref_grads.keys()
    for n in grads:
        torch.testing.assert_close(grads[n], ref_grads[n], atol=1e-5, rtol=1e-4, msg=n)
    # without fused_lm_head the model's own forward still runs (generation is unchanged)
    assert model(**enc).logits.shape[-1] == model.config.vocab_size


def test_entropy_as_a_metric_is_outside_autograd_with_the_same_values_and_gradients():
    """SFT, DPO, KTO log the entropy; only GRPO's entropy bonus differentiates it."""
    model, tok = load_model("tiny-llama", device="cpu")
    model.float()
    add_fused_lm_head(model, outputs=ALL)
    enc, labels = _batch(tok)
    model.zero_grad()
    ref = model(**enc, labels=labels, fused_lm_head=True)
    ref.loss.backward()
    ref_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert replace_fused_head(model, entropy_grad=False)
    model.zero_grad()
    out = model(**enc, labels=labels, fused_lm_head=True)
    assert out.log_probs.requires_grad and not out.entropy.requires_grad
    assert not out.log_sum_sq_probs.requires_grad and not out.mean_logits.requires_grad
    torch.testing.assert_close(out.entropy, ref.entropy.detach(), atol=2e-5, rtol=1e-5)
    out.loss.backward()
    for n, p in model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(p.grad, ref_grads[n], atol=1e-5, rtol=1e-4, msg=n)


def test_entropy_in_loss_only_for_an_entropy_bonus(tmp_path):
    from trl import DPOConfig, GRPOConfig, SFTConfig

    kw = {"output_dir": str(tmp_path), "bf16": False}
    assert entropy_in_loss(GRPOConfig(**kw, entropy_coef=0.01))
    assert entropy_in_loss(GRPOConfig(**kw, use_adaptive_entropy=True))
    assert not entropy_in_loss(GRPOConfig(**kw))
    assert not entropy_in_loss(SFTConfig(**kw))
    assert not entropy_in_loss(DPOConfig(**kw))
    assert not entropy_in_loss(None)


def test_only_trl_patched_cpu_models_are_replaced():
    model, _ = load_model("tiny-llama", device="cpu")
    assert not replace_fused_head(model)         # not patched by TRL: left alone


def test_engine_installs_it(build_job):
    job = build_job(model="tiny-llama", dataset="instructions", method="sft", peft="lora", max_steps=1,
                    max_rows=4, eval_rows=0, sample_prompts=0)
    assert job.model.get_base_model().forward.__func__.__name__ == "forward"
    assert "cpu_lm_head" in job.model.get_base_model().forward.__func__.__module__
    batch = {"input_ids": torch.tensor([[1, 5, 6, 7]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    out = job.model(**batch, labels=batch["input_ids"], fused_lm_head=True)
    assert out.log_probs.requires_grad and not out.entropy.requires_grad  # SFT logs it: a metric
