"""The reserved KV cache (workbench/models/kv_cache.py): decoding with it gives bit-identical
tokens and logits to transformers' own cache — greedy, sampled, several sequences per prompt,
beam search (which reorders the cache), a reservation too small, bf16 autocast — and it steps
aside where the model's cache is not plain full attention."""
import pytest
import torch

from workbench.models.kv_cache import ReservedLayer, reserved_cache, reserved_cache_kwargs

PROMPTS = [[1, 15, 27, 99], [1, 8, 3, 44, 52, 61, 70]]  # two lengths: left padding is in play


def _decode(model, cache_capacity, bf16=False, **kw):
    width = max(map(len, PROMPTS))
    ids = torch.tensor([[0] * (width - len(p)) + p for p in PROMPTS])
    mask = (torch.arange(width) >= torch.tensor([[width - len(p)] for p in PROMPTS])).long()
    extra = {} if cache_capacity is None else reserved_cache_kwargs(model, cache_capacity)
    torch.manual_seed(0)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = model.generate(input_ids=ids, attention_mask=mask, pad_token_id=0, **extra,
                             eos_token_id=None, return_dict_in_generate=True, output_logits=True, **kw)
    return out.sequences, torch.stack(out.logits, 1), next(iter(extra.values()), None)


@pytest.mark.parametrize("kw", [
    dict(max_new_tokens=12, do_sample=False),
    dict(max_new_tokens=12, do_sample=True, top_k=0, num_return_sequences=2),
    dict(max_new_tokens=8, do_sample=False, num_beams=3),
], ids=["greedy", "sampled-2-per-prompt", "beam-search"])
@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
def test_reserved_cache_decodes_bit_identically(tiny, kw, bf16):
    model, _ = tiny
    ref_ids, ref_logits, _ = _decode(model, None, bf16=bf16, **kw)
    for capacity in (7 + kw["max_new_tokens"], 3):  # exact, and too small: the layer grows
        ids, logits, cache = _decode(model, capacity, bf16=bf16, **kw)
        assert isinstance(cache.layers[0], ReservedLayer)
        assert torch.equal(ids, ref_ids) and torch.equal(logits, ref_logits)
    if not kw.get("num_beams"):  # one buffer for the whole decode: written in place, never copied
        _, _, cache = _decode(model, 7 + kw["max_new_tokens"], bf16=bf16, **kw)
        layer = cache.layers[0]
        assert layer.keys.data_ptr() == layer._buffers[0].data_ptr()
        assert layer._buffers[0].shape[-2] == 7 + kw["max_new_tokens"]


def test_not_used_where_the_cache_is_not_plain_full_attention():
    from transformers import Gemma3TextConfig, LlamaConfig

    sliding = Gemma3TextConfig(num_hidden_layers=2, layer_types=["sliding_attention", "full_attention"],
                               sliding_window=8, vocab_size=32, hidden_size=16, intermediate_size=32,
                               num_attention_heads=2, num_key_value_heads=1, head_dim=8)
    assert reserved_cache(type("M", (), {"config": sliding})(), 16) is None
    assert reserved_cache(object(), 16) is None  # no config at all
    full = LlamaConfig(num_hidden_layers=2, vocab_size=32, hidden_size=16, intermediate_size=32,
                       num_attention_heads=2, num_key_value_heads=1)
    prompt_learning = type("M", (), {"config": full,
                                     "active_peft_config": type("C", (), {"is_prompt_learning": True})()})()
    assert reserved_cache(prompt_learning, 16) is None
    assert len(reserved_cache(type("M", (), {"config": full})(), 16).layers) == 2


def test_layer_follows_dynamic_layer_through_crop_selection_and_growth():
    """Cache operations other than appending (assisted decoding crops, batch selection, beam
    reordering) replace or shorten the views; the layer then holds exactly what transformers'
    DynamicLayer holds, and it doubles its buffer past the reservation."""
    from transformers.cache_utils import DynamicLayer

    g = torch.Generator().manual_seed(0)
    ours, ref = ReservedLayer(capacity=6), DynamicLayer()

    def step(n, rows=3):
        k, v = torch.randn(rows, 2, n, 4, generator=g), torch.randn(rows, 2, n, 4, generator=g)
        a, b = ours.update(k, v), ref.update(k, v)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])

    step(4), step(1)
    ours.crop(-2), ref.crop(-2)
    step(2)                      # written where the cropped positions were: still one buffer
    assert ours._buffers[0].shape[-2] == 6
    idx = torch.tensor([2, 0])
    ours.batch_select_indices(idx), ref.batch_select_indices(idx)
    step(1, rows=2)              # rows selected: a new buffer from what the layer holds
    step(3, rows=2)              # 9 > 6 positions: doubled
    assert ours._buffers[0].shape[-2] == 18
    step(1, rows=2)
    assert ours.keys.data_ptr() == ours._buffers[0].data_ptr()
