"""A frozen reference copied from a model a TRL trainer was already built on must run its
own weights: TRL rebinds the instance's forward (fused LM head) with a closure over the
original, and a plain deepcopy keeps calling the original (measured: identical logits from a
perturbed copy)."""
import datasets
import torch
from trl import SFTConfig, SFTTrainer

from workbench.methods._preference import frozen_copy
from workbench.models import load_model


def test_a_copy_after_a_trainer_runs_its_own_weights(tmp_path):
    model, tok = load_model("tiny-llama", device="cpu")
    rows = datasets.Dataset.from_list([{"prompt": "hi", "completion": " there"}] * 4)
    SFTTrainer(model=model, args=SFTConfig(output_dir=str(tmp_path), max_steps=1, report_to="none", use_cpu=True),
               train_dataset=rows, processing_class=tok)
    ref = frozen_copy(model)
    assert not any(p.requires_grad for p in ref.parameters()) and not ref.training
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.1)
        ids = tok("hello world", return_tensors="pt").input_ids
        assert not torch.allclose(model(ids).logits, ref(ids).logits)
        assert torch.allclose(ref(ids).logits, type(ref).forward(ref, ids).logits)
