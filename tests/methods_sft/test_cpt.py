"""Continued pre-training (`cpt`): the loss is the mean next-token NLL over every token of the
documents (checked against a hand computation on the model), packing loses no token where
the unpacked run says how many it cuts, the loss falls, and samples continue documents."""
import json
import math
import warnings

import pytest
import torch
from sft_helpers import falls, run_tiny, train_values

from workbench import TrainConfig, train
from workbench.data import load
from workbench.methods._preference import TruncationWarning
from workbench.models import load_model

DOCS = dict(dataset="stdlib-docs", max_length=64, learning_rate=1e-2)


@pytest.mark.slow
def test_first_loss_is_the_mean_nll_over_every_document_token(tmp_path):
    # Two unpacked documents in one batch; LoRA's B starts at zero, so step 1's loss is the
    # base model's. A real model, whose per-token NLLs range over orders of magnitude: a random
    # one gives every token ~log(vocab), so a wrong token set would hardly move the mean.
    # max_length 128: one document is cut, the other (78 tokens) is padded and keeps its EOS
    r = run_tiny(tmp_path, "cpt", "lora", **{**DOCS, "max_length": 128}, model="smollm2-135m-instruct",
                 precision="fp32", max_rows=2, batch_size=2, max_steps=1, method_args={"packing": False})
    model, tok = load_model("smollm2-135m-instruct", device="cpu")
    seed = json.loads((r.run_dir / "config.json").read_text())["seed"]
    texts = load("stdlib-docs", format="text", split="train", max_rows=2, seed=seed)["text"]
    nll, count = 0.0, 0
    with torch.no_grad():
        for text in texts:
            ids = (tok(text)["input_ids"] + [tok.eos_token_id])[:128]  # TRL: EOS appended, then cut
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0, :-1].float(), -1)
            nll -= logp.gather(1, torch.tensor(ids[1:])[:, None]).sum().item()
            count += len(ids) - 1
    assert train_values(r, "loss")[0] == pytest.approx(nll / count, rel=1e-4)


def test_packing_keeps_every_token_and_unpacked_says_what_it_cuts(tmp_path):
    # One step over every (packed) sequence of 4 documents: the tokens it saw are all of theirs
    # (EOS included) when packed, each cut at max_length unpacked, and the unpacked run says so.
    from workbench.models import load_tokenizer

    tok = load_tokenizer("tiny-llama")
    docs = load("stdlib-docs", format="text", split="train", max_rows=4, seed=0)["text"]
    lengths = [len(tok(d)["input_ids"]) + 1 for d in docs]
    assert max(lengths) > 64  # the case that matters: a document longer than max_length
    base = dict(model="tiny-llama", method="cpt", dataset="stdlib-docs", max_rows=4, batch_size=64, max_length=64,
                max_steps=1, eval_rows=0, sample_prompts=0, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        packed = train(TrainConfig(**base, run_dir=str(tmp_path / "packed")))
    assert not [w for w in caught if issubclass(w.category, TruncationWarning)]
    assert train_values(packed, "num_tokens") == [sum(lengths)]
    cut, kept = sum(n > 64 for n in lengths), sum(min(n, 64) for n in lengths)
    with pytest.warns(TruncationWarning, match=rf"{cut} of 4 training documents are longer than max_length=64 "
                                               rf"tokens; TRL cuts them, so {sum(lengths) - kept} "
                                               rf"of {sum(lengths)} tokens are never trained on"):
        unpacked = train(TrainConfig(**base, method_args={"packing": False}, run_dir=str(tmp_path / "unpacked")))
    assert train_values(unpacked, "num_tokens") == [kept]


def test_loss_falls_and_samples_continue_the_eval_documents(tmp_path):
    r = run_tiny(tmp_path, "cpt", **DOCS, max_rows=64, eval_rows=4, eval_steps=12, sample_prompts=2)
    assert falls(train_values(r, "loss"), by=0.2)
    assert math.isfinite(r.summary["eval_loss"])
    seed = json.loads((r.run_dir / "config.json").read_text())["seed"]
    opening = [" ".join(t.split()[:16]) for t in load("stdlib-docs", format="text", split="eval", max_rows=4,
                                                        seed=seed)["text"][:2]]
    assert [rec.get("prompt") for rec in r.records if rec.kind == "sample"][-2:] == opening
