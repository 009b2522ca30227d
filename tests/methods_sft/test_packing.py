"""Padding-free packing (`sft --set packing=true`): several examples in one row must not see
each other. transformers builds a block-diagonal mask from the restarting position ids, but
only when no KV cache is created — TRL's compute_loss passes use_cache=False for that reason;
here the same batch TRL's collator builds is checked token by token against each example alone."""
from __future__ import annotations

import pytest
import torch
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from workbench.models import load_model

TEXTS = ["The cat sat on the mat.", "Hello there, how are you doing today my friend?", "A B C", "Why?"]


@pytest.fixture(scope="module")
def tiny():
    model, tok = load_model("tiny-llama")
    return model, tok


def _alone(model, ids: list[int]) -> torch.Tensor:
    x = torch.tensor([ids])
    logp = model(input_ids=x, use_cache=False).logits[0, :-1].float().log_softmax(-1)
    return -logp.gather(-1, x[0, 1:, None])[:, 0]


@torch.no_grad()
def test_packed_per_token_losses_equal_each_example_alone(tiny):
    model, tok = tiny
    model.train()  # as in training: the case where a cache would silently disable the block mask
    examples = [{"input_ids": tok(t)["input_ids"]} for t in TEXTS]
    batch = DataCollatorForLanguageModeling(pad_token_id=tok.pad_token_id or 0, padding_free=True)(examples)
    assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch  # one row, no padding
    logits = model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False).logits
    labels = batch["labels"][0, 1:]
    keep = labels != -100
    packed = -logits[0, :-1].float().log_softmax(-1)[keep].gather(-1, labels[keep, None])[:, 0]
    alone = torch.cat([_alone(model, e["input_ids"]) for e in examples])
    assert packed.shape == alone.shape  # the first token of each example is never a target
    torch.testing.assert_close(packed, alone, atol=1e-5, rtol=1e-5)
    # and the mean loss TRL reports equals the padded batch's
    tok.padding_side = "right"
    padded = tok.pad({"input_ids": [e["input_ids"] for e in examples]}, return_tensors="pt")
    pad_labels = padded["input_ids"].masked_fill(padded["attention_mask"] == 0, -100)
    loss_padded = model(**padded, labels=pad_labels, use_cache=False).loss
    loss_packed = model(**batch, use_cache=False).loss
    torch.testing.assert_close(loss_packed, loss_padded, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_without_the_block_mask_examples_would_leak(tiny):
    """The check above can fail: attending across the boundary (one causal sequence, which is
    what a KV cache makes transformers assume) changes the later examples' losses."""
    model, tok = tiny
    model.eval()
    examples = [tok(t)["input_ids"] for t in TEXTS[:2]]
    joined = torch.tensor([examples[0] + examples[1]])
    leaked = model(input_ids=joined, use_cache=False).logits[0, len(examples[0]):-1].float().log_softmax(-1)
    second = torch.tensor(examples[1])
    leaked_loss = -leaked.gather(-1, second[1:, None])[:, 0]
    assert (leaked_loss - _alone(model, examples[1])).abs().max() > 1e-3
