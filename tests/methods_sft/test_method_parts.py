"""The non-loss parts of the methods on small real inputs: masking, HFT's selection,
S3FT's target choice, and our DFT against TRL's own on a real batch."""
import random

import pytest
import torch

from workbench.methods.hft import choose_half, parameter_groups
from workbench.methods.masked_thought import mask_response_inputs, mask_token_id
from workbench.methods.s3ft import choose_targets
from workbench.models import load_model


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-llama", device="cpu")


def test_masking_touches_only_response_inputs_and_keeps_labels():
    ids = torch.arange(10, 410).reshape(2, 200)
    labels = ids.clone()
    labels[:, :50] = -100  # prompt
    labels[1, 180:] = -100  # padding
    g = torch.Generator().manual_seed(0)
    masked, replaced = mask_response_inputs(ids, labels, 0.3, mask_id=1, generator=g)
    assert not replaced[:, :50].any() and not replaced[1, 180:].any()
    assert (masked[replaced] == 1).all() and (masked[~replaced] == ids[~replaced]).all()
    share = replaced.sum().item() / (labels != -100).sum().item()
    assert 0.22 < share < 0.38
    assert mask_response_inputs(ids, labels, 0.0, 1, g)[1].sum() == 0


def test_mask_token_defaults_and_bad_token(tiny):
    from workbench.errors import WorkbenchError

    _, tok = tiny
    assert mask_token_id(tok, "") == tok.unk_token_id  # SmolLM2 has no mask token
    assert mask_token_id(tok, "<|im_start|>") == tok.convert_tokens_to_ids("<|im_start|>")
    with pytest.raises(WorkbenchError, match="mask_token"):
        mask_token_id(tok, "not one token at all")


def test_hft_selects_half_of_each_block_category(tiny):
    model, _ = tiny
    groups = parameter_groups(model)
    assert len(groups) == model.config.num_hidden_layers
    chosen = {id(p) for p in choose_half(model, 0.5, random.Random(0))}
    for block in groups:
        for cat in block:
            k = sum(id(p) in chosen for _, p in cat)
            assert k == max(1, round(len(cat) / 2))
    other = {id(p) for p in choose_half(model, 0.5, random.Random(1))}
    assert other != chosen  # a new stage draws a new half


def test_s3ft_uses_own_answer_only_when_checker_says_right():
    rows = [{"prompt": [{"role": "user", "content": "What is 2 + 3?"}], "answer": "5", "task": "arithmetic",
             "solution": "2 + 3 = 5.\nAnswer: 5"}] * 2
    out, own = choose_targets(rows, ["Two plus three.\nAnswer: 5", "Answer: 6"])
    assert own == [True, False]
    assert out[0]["completion"][0]["content"] == "Two plus three.\nAnswer: 5"
    assert out[1]["completion"][0]["content"] == "2 + 3 = 5.\nAnswer: 5"


def test_our_dft_equals_trls_dft_on_a_real_batch(tiny, tmp_path):
    """Anchored SFT (λ=0) computes DFT from full logits; it must match TRL's fused DFT."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from workbench.methods.anchored_sft import AnchoredSFTTrainer

    model, tok = tiny
    rows = [{"prompt": [{"role": "user", "content": f"Say {w}."}],
             "completion": [{"role": "assistant", "content": f"{w} {w} {w}."}]} for w in ("one", "two", "three")]
    args = SFTConfig(output_dir=str(tmp_path), loss_type="dft", report_to="none", use_cpu=True,
                     per_device_train_batch_size=3, max_length=128)
    ds = Dataset.from_list(rows)
    trl_trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    ours = AnchoredSFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok,
                              kl_coef=0.0, kl_direction="ref_policy", ref_model=model)
    batch = trl_trainer.data_collator([trl_trainer.train_dataset[i] for i in range(3)])
    model.train()  # the train path (token counting, train metrics); the model has no dropout
    with torch.no_grad():
        a = trl_trainer.compute_loss(model, dict(batch))
        b = ours.compute_loss(model, dict(batch))
    assert a.item() == pytest.approx(b.item(), rel=1e-4)
    assert ours._metrics["train"]["kl_to_ref"][-1] == pytest.approx(0.0, abs=1e-6)
    model.eval()
