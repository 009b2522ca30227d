"""The probes' fast paths give the numbers of the slow ones: packed teacher forcing equals each
sequence run alone, and the decoding copy (merged adapter, bf16-stored linears) decodes like
the model it was copied from."""
import contextlib
import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model

from workbench.analysis import token_shift
from workbench.analysis.prompts import encode, has_chat_template, render
from workbench.analysis.resolve import Side
from workbench.analysis.scoring import (
    decoding_copy,
    generate,
    pack,
    teacher_forced_logits,
    teacher_forced_token_logits,
)
from workbench.models.prepacked import packing_available

# prompt and continuation lengths chosen so rows pack several sequences, one continuation is
# empty and one sequence is longer than PACK_WIDTH alone
PROMPT_LENS = (7, 30, 3, 120, 12, 1)
CONT_LENS = (20, 0, 64, 9, 200, 5)


def _sequences(vocab=1000, seed=0):
    g = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(5, vocab, (n,), generator=g).tolist() for n in PROMPT_LENS]
    conts = [torch.randint(5, vocab, (n,), generator=g).tolist() for n in CONT_LENS]
    return prompts, conts


def _alone(model, prompts, conts, context=None):
    """Reference: every sequence in its own forward, no padding, no packing."""
    out = []
    with torch.inference_mode(), (context() if context else contextlib.nullcontext()):
        for p, c in zip(prompts, conts):
            if c:
                logits = model(input_ids=torch.tensor([p + c])).logits[0].float()
                out.append(logits[len(p) - 1:len(p) - 1 + len(c)])
    return torch.cat(out)


@pytest.fixture(scope="module")
def lora(tiny):
    model, tok = tiny
    torch.manual_seed(3)
    peft = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, lora_alpha=32, init_lora_weights=False,
                                                            target_modules=["q_proj", "v_proj", "down_proj"]))
    return peft.eval(), tok


def test_pack_places_every_sequence_once_within_the_width():
    lengths = [90, 10, 250, 30, 140, 60, 256, 1]
    rows = pack(lengths, 256)
    assert sorted(i for r in rows for i in r) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in r) <= 256 for r in rows)
    assert len(rows) == 4  # first-fit decreasing: 256 | 250+1 | 140+90+10 | 60+30


@pytest.mark.parametrize("adapter", ["none", "on", "off"])
def test_packed_logits_equal_each_sequence_alone(tiny, lora, adapter):
    model, tok = tiny if adapter == "none" else lora
    side = Side(model, tok, "m", adapter_off=adapter == "off")
    prompts, conts = _sequences()
    packed = teacher_forced_token_logits(side, prompts, conts, precision="fp32")
    ref = _alone(model, prompts, conts, side.context)
    assert packed.shape == (sum(CONT_LENS), ref.shape[-1])
    torch.testing.assert_close(packed, ref, atol=1e-4, rtol=1e-4)
    if adapter == "on":  # the adapter matters, so equality above is not vacuous
        assert (ref - _alone(model, prompts, conts, model.disable_adapter)).abs().max() > 1e-2


def test_sequences_in_one_row_do_not_see_each_other(tiny):
    """Negative control: the same packed row with position ids that run on (one long
    sequence) gives different logits for the second sequence, so the test above would catch
    attention leaking across sequences."""
    model, tok = tiny
    p, c = _sequences()
    row = p[0] + c[0] + p[2] + c[2]
    with torch.inference_mode():
        leaky = model(input_ids=torch.tensor([row])).logits[0].float()
    start = len(p[0]) + len(c[0]) + len(p[2]) - 1
    packed = teacher_forced_token_logits(Side(model, tok, "m"), [p[0], p[2]], [c[0], c[2]], precision="fp32")
    assert (packed[len(c[0]):] - leaky[start:start + len(c[2])]).abs().max() > 1e-2


def test_padded_view_holds_the_packed_logits_and_zeros_elsewhere(tiny):
    model, tok = tiny
    side = Side(model, tok, "m")
    prompts, conts = _sequences()
    T = max(CONT_LENS)
    out = torch.full((len(conts), T), tok.pad_token_id)
    mask = torch.zeros((len(conts), T), dtype=torch.bool)
    for i, c in enumerate(conts):
        out[i, :len(c)], mask[i, :len(c)] = torch.tensor(c, dtype=torch.long), True
    logits = teacher_forced_logits(side, prompts, out, mask, precision="fp32")
    torch.testing.assert_close(logits[mask], _alone(model, prompts, conts), atol=1e-4, rtol=1e-4)
    assert (logits[~mask] == 0).all()
    mask[0, 0] = False  # a hole before valid tokens is not a continuation
    with pytest.raises(ValueError, match="prefix"):
        teacher_forced_logits(side, prompts, out, mask, precision="fp32")


def _decode(side, precision, prompts):
    return generate(side, prompts, max_new_tokens=12, precision=precision)


def test_merged_copy_decodes_the_same_tokens_as_the_adapter(lora):
    model, tok = lora
    side = Side(model, tok, "tuned")
    dec = decoding_copy(side, "fp32")
    assert dec.model is not model and not hasattr(dec.model, "peft_config")  # merged, a copy
    prompts = [[1, 50, 60, 70], [1, 9, 8], [1, 400, 500, 600, 700, 800]]
    ids, valid, logits = _decode(side, "fp32", prompts)
    ids_m, valid_m, logits_m = _decode(dec, "fp32", prompts)
    assert torch.equal(ids, ids_m) and torch.equal(valid, valid_m)
    torch.testing.assert_close(logits_m, logits, atol=1e-4, rtol=1e-4)
    assert model.base_model.model.model.layers[0].self_attn.q_proj.merged is False  # original untouched


def test_bf16_copy_gives_autocast_logits_bit_for_bit(tiny):
    model, tok = tiny
    side = Side(model, tok, "base")
    dec = decoding_copy(side, "bf16")
    assert dec.model.lm_head.weight.dtype == torch.bfloat16
    # tiny-llama ties its head to the embedding: the copy unties it, embeddings stay fp32
    assert dec.model.get_input_embeddings().weight.dtype == torch.float32
    assert model.lm_head.weight.dtype == torch.float32
    prompts = [[1, 50, 60, 70], [1, 9, 8, 7, 6, 5, 4]]
    ids, _, logits = _decode(side, "bf16", prompts)
    ids_c, _, logits_c = _decode(dec, "bf16", prompts)
    assert torch.equal(ids, ids_c) and torch.equal(logits, logits_c)
    # fp32: nothing to merge or cast; a copy only where its linears can be packed (prepacked.py)
    assert (decoding_copy(side, "fp32") is side) != packing_available()


def test_token_shift_of_a_lora_run_matches_the_unmerged_reference(tiny, lora):
    """End to end: the fast probe's records equal a slow per-position reference computed
    from the unmerged adapter (ranks exact, probabilities to rounding)."""
    model, tok = lora
    base, tuned = Side(model, tok, "base", adapter_off=True), Side(model, tok, "tuned")
    prompts = ["What is the capital of France?", "Name two colours."]
    r = token_shift(base, tuned, prompts, max_new_tokens=10, precision="fp32", progress=False)
    assert r.n_tokens > 10
    for pid, group in r.records.groupby("prompt_id"):
        msgs = [{"role": "user", "content": prompts[pid]}]
        p = encode(tok, [render(tok, msgs)], templated=has_chat_template(tok))[0]
        c = group["token_id"].tolist()
        logits = _alone(model, [p], [c], model.disable_adapter)
        ranks = (logits > logits.gather(1, torch.tensor(c)[:, None])).sum(1) + 1
        assert group["base_rank"].tolist() == ranks.tolist()
