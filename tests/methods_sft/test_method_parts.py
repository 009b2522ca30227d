"""The non-loss parts of the methods on small real inputs: masking, HFT's selection,
S3FT's target choice, and our DFT against TRL's own on a real batch."""
import copy
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


def test_hft_trains_exactly_the_papers_half(tiny):
    """HFT (Hui et al. 2024) on a LLaMA block: 2 of the 4 attention matrices in every block;
    of the 3 FFN matrices, 2 in half the blocks and 1 in the other half, so exactly half of
    the FFN; norms (our reading) 1 of 2 per block. Expected sizes come from the config."""
    model, _ = tiny
    c = model.config
    h, i, n_layers = c.hidden_size, c.intermediate_size, c.num_hidden_layers
    kv = c.num_key_value_heads * c.head_dim  # grouped-query attention: k and v are narrower
    size = {"q_proj": h * h, "k_proj": kv * h, "v_proj": kv * h, "o_proj": h * h,
            "gate_proj": i * h, "up_proj": i * h, "down_proj": h * i,
            "input_layernorm": h, "post_attention_layernorm": h}
    attn, ffn, norms = {"q_proj", "k_proj", "v_proj", "o_proj"}, {"gate_proj", "up_proj", "down_proj"}, \
        {"input_layernorm", "post_attention_layernorm"}
    layers = model.model.layers
    assert sum(p.numel() for p in layers.parameters()) == n_layers * sum(size.values())  # the shapes above
    assert len(parameter_groups(model)) == n_layers
    draws = set()
    for seed in range(6):
        chosen = {id(p) for p in choose_half(model, 0.5, random.Random(seed))}
        on = [{name.split(".")[-2] for name, p in layer.named_parameters() if id(p) in chosen} for layer in layers]
        assert all(len(s & attn) == 2 and len(s & norms) == 1 for s in on)
        assert sorted(len(s & ffn) for s in on) == [1] * (n_layers // 2) + [2] * (n_layers // 2)
        assert all(s <= attn | ffn | norms for s in on)
        trainable = sum(p.numel() for p in model.parameters() if id(p) in chosen)
        assert trainable == sum(size[m] for s in on for m in s)
        ffn_trainable = sum(size[m] for s in on for m in s & ffn)
        assert 2 * ffn_trainable == n_layers * 3 * i * h  # exactly half of the FFN weights
        assert 2 * sum(size[m] for s in on for m in s & norms) == n_layers * 2 * h
        draws.add(tuple(frozenset(s) for s in on))
    assert len(draws) > 1  # a new stage draws a new half


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
    # The reference is a genuinely different model: a copy with every weight perturbed.
    ref = copy.deepcopy(model)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    trl_trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok)
    ours = AnchoredSFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok,
                              kl_coef=0.0, kl_direction="ref_policy", ref_model=ref)
    batch = trl_trainer.data_collator([trl_trainer.train_dataset[i] for i in range(3)])
    model.train()  # the train path (token counting, train metrics); the model has no dropout
    try:
        with torch.no_grad():
            a = trl_trainer.compute_loss(model, dict(batch))
            b = ours.compute_loss(model, dict(batch))
            # by hand: KL(π_ref ‖ π_θ) over the vocabulary at each completion position, in float64,
            # averaged over those positions
            inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
            log_pol = torch.log_softmax(model(**inputs).logits[:, :-1].double(), -1)
            log_ref = torch.log_softmax(ref(**inputs).logits[:, :-1].double(), -1)
            kl = torch.nn.functional.kl_div(log_pol, log_ref, log_target=True, reduction="none").sum(-1)
            completion = batch["labels"][:, 1:] != -100
            expected = kl[completion].mean().item()
    finally:
        model.eval()
    assert a.item() == pytest.approx(b.item(), rel=1e-4)
    assert expected > 1e-3  # the perturbation moved the distribution: a KL of 0 would be wrong
    assert ours._metrics["train"]["kl_to_ref"][-1] == pytest.approx(expected, rel=1e-4)
