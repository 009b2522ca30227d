"""A model that arrives already wrapped as a PeftModel (as the on-policy loop hands it from
round to round, with no peft_config) gets no frozen copy: TRL copies the current adapter
into a "ref" adapter and scores the reference by switching to it, so at the start the
reference *is* the policy (margins 0, KL 0) — not the adapter-disabled base."""
import contextlib

import pytest
import torch

from workbench import TrainConfig, data
from workbench.config import dataclass_from_args
from workbench.methods import get_method
from workbench.methods._preference import is_peft_model, reference_model
from workbench.methods._reference_free import probe_reference
from workbench.methods.preference_metrics import preference_probe
from workbench.models import load_model
from workbench.training.context import TrainContext

PROBES = {"probe_pairs": 4, "probe_kl_prompts": 1, "probe_max_new_tokens": 4}


def _trained_adapter():
    """tiny-llama with a LoRA adapter that has 'trained': B is not zero, so policy ≠ base."""
    from peft import LoraConfig, get_peft_model

    model, tok = load_model("tiny-llama", device="cpu")
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora_B." in name:
                p.normal_(0, 0.2)
    return model, tok


def _context(tmp_path, method, dataset, fmt, rows):
    model, tok = _trained_adapter()
    spec = get_method(method)
    cfg = TrainConfig(model="tiny-llama", dataset=dataset, method=method, peft="lora", max_steps=1,
                      batch_size=rows, max_rows=rows, max_length=160, eval_rows=rows, save_steps=1000,
                      sample_prompts=0, run_dir=str(tmp_path / "run"))
    knobs = dataclass_from_args(spec.config_cls, PROBES, where=f"method.{method}")
    train = data.load(dataset, format=fmt, max_rows=rows)
    evals = data.load(dataset, format=fmt, split="eval", max_rows=rows)
    ctx = TrainContext(config=cfg, method_config=knobs, model=model, tokenizer=tok, train_dataset=train,
                       eval_dataset=evals, peft_config=None, output_dir=str(tmp_path / "ckpt"), device="cpu")
    return spec, ctx


@pytest.mark.parametrize("method,dataset,fmt,rows", [
    ("dpo", "preferences", "preference", 2),
    ("lipo", "rankings", "ranked", 2),
    ("kto", "feedback", "unpaired", 4),
])
def test_peft_model_reference_is_the_policy_at_start(tmp_path, method, dataset, fmt, rows):
    spec, ctx = _context(tmp_path, method, dataset, fmt, rows)
    assert is_peft_model(ctx.model) and reference_model(ctx) is None and probe_reference(ctx) is None
    trainer = spec.build_trainer(ctx)
    assert trainer.ref_model is None and "ref" in trainer.model.peft_config  # TRL's copy of the adapter

    if method != "kto":  # KTO logs no margin; its reference path is the same as DPO's
        trainer.model.train()
        batch = next(iter(trainer.get_train_dataloader()))
        with torch.no_grad():
            trainer.compute_loss(trainer.model, batch)
        assert abs(trainer._metrics["train"]["rewards/margins"][-1]) < 1e-4

    rows_ = list(ctx.eval_dataset)
    probe = dict(max_pairs=4, kl_prompts=1, max_new_tokens=4)
    start = preference_probe(trainer.model, trainer.probe_reference, ctx.tokenizer, rows_, **probe)
    assert start["kl_to_ref"] == pytest.approx(0.0, abs=1e-4)

    # what the reference would be without TRL's "ref" adapter: the base model
    base = preference_probe(trainer.model, lambda: _disabled(trainer.model), ctx.tokenizer, rows_, **probe)
    assert abs(base["kl_to_ref"]) > 1e-3  # the test is meaningful: policy ≠ base


@contextlib.contextmanager
def _disabled(model):
    with model.disable_adapter():
        yield model
