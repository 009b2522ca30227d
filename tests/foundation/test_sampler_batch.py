"""The run's samples are generated as one left-padded batch: each completion must equal what
the prompt alone gives (greedy), whatever the other prompts' lengths."""
import torch

from workbench.training.samples import Sampler


def test_batched_samples_equal_one_prompt_at_a_time(tiny):
    model, tok = tiny
    prompts = [[{"role": "user", "content": "Name three colours of the rainbow, please, in order."}],
               "Hi",
               [{"role": "user", "content": "Why?"}]]
    batched = Sampler(tok, prompts, max_new_tokens=12)(model, step=0)
    assert [s["prompt_id"] for s in batched] == [0, 1, 2]
    assert [s["prompt"] for s in batched] == [prompts[0][0]["content"], "Hi", "Why?"]
    for i, prompt in enumerate(prompts):
        enc, _ = Sampler(tok, [prompt], 12).encode()
        assert not (enc["attention_mask"] == 0).any()  # alone: no padding at all
        with torch.no_grad():
            ids = model.generate(**enc, max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)
        alone = tok.decode(ids[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        assert batched[i]["completion"] == alone, i
    assert len({s["completion"] for s in batched}) > 1  # the prompts really differ in what they give


def test_padding_goes_on_the_left_and_training_mode_is_restored(tiny):
    model, tok = tiny
    enc, _ = Sampler(tok, ["a much longer prompt than the other one", "short"], 4).encode()
    assert enc["attention_mask"][1, 0] == 0 and enc["attention_mask"][1, -1] == 1
    model.train()
    try:
        Sampler(tok, ["x"], 2)(model, step=0)
        assert model.training
    finally:
        model.eval()
