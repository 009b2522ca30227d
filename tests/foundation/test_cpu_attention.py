"""The CPU attention (workbench/models/cpu_attention.py): the math SDPA kernel for short bf16
rows, flash otherwise; as accurate as flash; the same kernel in any mode, with or without grad."""
import tempfile

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from workbench.models import cpu_attention
from workbench.models.cpu_attention import NAME, SHORT


class _Module(torch.nn.Module):
    is_causal = True


def _qkv(length, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3, length, 16, generator=g, dtype=torch.float64).to(dtype) for _ in range(3)]


def _kernel(backend, q, k, v):
    with sdpa_kernel(backend):  # a single query (a decode step) sees every key: not causal
        return F.scaled_dot_product_attention(q, k, v, is_causal=q.shape[-2] > 1)


def _ours(q, k, v):  # transformers' layout out: (batch, length, heads, dim)
    return cpu_attention.attention(_Module(), q, k, v, None, scaling=q.shape[-1] ** -0.5)[0].transpose(1, 2)


def test_short_rows_take_the_math_kernel_and_long_rows_flash():
    short = _qkv(SHORT, torch.bfloat16)
    assert torch.equal(_ours(*short), _kernel(SDPBackend.MATH, *short))
    long = _qkv(SHORT + 1, torch.bfloat16)
    assert torch.equal(_ours(*long), _kernel(SDPBackend.FLASH_ATTENTION, *long))
    step = [t[:, :, :1] if i == 0 else t for i, t in enumerate(_qkv(40, torch.bfloat16))]  # a decode step
    assert torch.equal(_ours(*step), _kernel(SDPBackend.FLASH_ATTENTION, *step))
    fp32 = _qkv(SHORT, torch.float32)
    assert torch.equal(_ours(*fp32), _kernel(SDPBackend.FLASH_ATTENTION, *fp32))  # fp32: transformers' as before


def test_math_kernel_in_bf16_is_as_accurate_as_flash():
    exact = _kernel(SDPBackend.MATH, *_qkv(96))
    low = _qkv(96, torch.bfloat16)
    err = {b: (_kernel(b, *low).double() - exact).norm() / exact.norm()
           for b in (SDPBackend.MATH, SDPBackend.FLASH_ATTENTION)}
    assert err[SDPBackend.MATH] <= 1.1 * err[SDPBackend.FLASH_ATTENTION]


def test_loaded_models_use_it_with_and_without_grad_alike_and_do_not_save_it(tiny):
    model, tok = tiny
    assert model.config._attn_implementation == NAME
    ids = torch.randint(0, model.config.vocab_size, (2, 20))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # a policy with grad in train mode, its reference
        with torch.no_grad():                           # without, in eval mode: the same numbers
            reference = model(input_ids=ids).logits
        model.train()
        try:
            assert torch.equal(model(input_ids=ids).logits.detach(), reference)
        finally:
            model.eval()
    with tempfile.TemporaryDirectory() as d:
        model.config.save_pretrained(d)
        assert NAME not in open(f"{d}/config.json").read()


def test_under_bf16_autocast_the_fp32_query_counts_as_bf16():
    """Training's autocast hands attention an fp32 query (the rotary embedding multiplies the bf16
    projection by fp32 cos/sin); SDPA casts it down itself, so the short-row rule must see bf16."""
    q, k, v = _qkv(SHORT, torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = _ours(q, k, v)
        with sdpa_kernel(SDPBackend.MATH):
            math = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert torch.equal(ours, math)


# --- packed rows: several examples side by side, position ids restarting at each -------------

class _GQA(_Module):
    num_key_value_groups = 3


def _packed(lengths_per_row, dtype, seed=1):
    """q (9 heads), k/v (3 heads) for rows packed with examples of these lengths, their position
    ids, and the block-diagonal causal mask transformers builds from them."""
    from transformers.masking_utils import find_packed_sequence_indices

    width = sum(lengths_per_row[0])
    pos = torch.stack([torch.cat([torch.arange(n) for n in row]) for row in lengths_per_row])
    example = find_packed_sequence_indices(pos)
    mask = (example[:, None, :, None] == example[:, None, None, :]) & torch.ones(width, width, dtype=torch.bool).tril()
    g = torch.Generator().manual_seed(seed)
    rows = len(lengths_per_row)
    q, k, v = (torch.randn(rows, h, width, 16, generator=g, dtype=dtype, requires_grad=True) for h in (9, 3, 3))
    return q, k, v, pos, mask


def _masked_sdpa(q, k, v, mask):
    return F.scaled_dot_product_attention(q, k.repeat_interleave(3, 1), v.repeat_interleave(3, 1), attn_mask=mask,
                                          scale=0.25).transpose(1, 2)


def _grads(out, inputs, seed=2):
    d = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    return torch.autograd.grad((out * d).sum(), inputs)


LENGTHS = [[7, 30, 3, 1, 15, 40, 4], [20, 36, 44]]  # lengths in several buckets, a 1-token example


def test_packed_rows_split_into_examples_give_the_masked_kernels_values_and_gradients(monkeypatch):
    calls = []
    segmented = cpu_attention._segmented
    monkeypatch.setattr(cpu_attention, "_segmented", lambda *a, **kw: calls.append(a[0]) or segmented(*a, **kw))
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
        q, k, v, pos, mask = _packed(LENGTHS, dtype)
        ours = cpu_attention.attention(_GQA(), q, k, v, mask, position_ids=pos, scaling=0.25)[0]
        ref = _masked_sdpa(q, k, v, mask)
        torch.testing.assert_close(ours, ref, atol=tol, rtol=tol)
        for a, b in zip(_grads(ours, (q, k, v)), _grads(ref, (q, k, v))):
            torch.testing.assert_close(a, b, atol=tol, rtol=tol)
    assert len(calls) == 2 and len(calls[0].buckets) > 1  # the split path, with more than one bucket
    # bf16 autocast, as in training: as close to fp64 as the masked kernel is
    q, k, v, pos, mask = _packed(LENGTHS, torch.float32)
    exact = _masked_sdpa(*(t.double() for t in (q, k, v)), mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = cpu_attention.attention(_GQA(), q, k, v, mask, position_ids=pos, scaling=0.25)[0]
        ref = _masked_sdpa(q, k, v, mask)
    err = {name: ((x.double() - exact).norm() / exact.norm()).item() for name, x in (("ours", ours), ("ref", ref))}
    assert err["ours"] <= 1.1 * err["ref"], err


def test_padded_rows_split_too_and_pads_get_zeros():
    """Right or left padding, with or without packing: the real tokens' values and gradients are
    the masked kernel's; a pad's output is zero (the masked kernel's is whatever its row makes)."""
    q, k, v, pos, mask = _packed(LENGTHS, torch.float64)
    real = torch.ones(mask.shape[0], mask.shape[-1], dtype=torch.bool)
    real[1, -3:] = False  # row 1: right padding after its last example
    real[0, :2] = False   # row 0: its first example starts with two pads (left padding)
    padded = mask & real[:, None, None, :]
    ours = cpu_attention.attention(_GQA(), q, k, v, padded, position_ids=pos, scaling=0.25)[0]
    ref = _masked_sdpa(q, k, v, padded)
    keep = real[:, :, None, None].expand_as(ours)
    torch.testing.assert_close(ours[keep], ref[keep], atol=1e-12, rtol=1e-12)
    assert not ours[~keep].any()
    d = torch.randn(ours.shape, dtype=ours.dtype) * keep  # a loss on the real tokens only
    for a, b in zip(torch.autograd.grad((ours * d).sum(), (q, k, v)), torch.autograd.grad((ref * d).sum(), (q, k, v))):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)
    # a padded batch with no packing (what an unpacked SFT or DPO batch is): one example per row
    whole = torch.ones_like(mask[0, 0]).tril() & real[:, None, None, :]
    assert cpu_attention._plan(whole, None, 2) is not None


def test_anything_but_a_causal_mask_of_examples_keeps_transformers_kernel():
    q, k, v, pos, mask = _packed(LENGTHS, torch.float32)
    plan = cpu_attention._plan
    assert plan(mask, pos, 2) is not None
    window = mask & torch.ones_like(mask[0, 0]).triu(-8)  # a sliding window shorter than an example
    assert plan(window, pos, 2) is None
    causal = torch.ones_like(mask[0, 0]).tril().expand_as(mask)
    assert plan(causal, None, 2) is None  # one whole example per row, no pads: nothing to split
    assert plan(torch.ones_like(mask), None, 2) is None  # bidirectional
    gap = mask.clone()
    gap[0, :, :, 10] = False  # a pad inside an example: splitting would cut it in two
    assert plan(gap, pos, 2) is None
    q1 = q[:, :, -1:]  # a decode step: one query against cached keys
    assert cpu_attention._split_plan(mask[:, :, -1:], pos, q1) is None


def test_a_position_bias_keeps_transformers_kernel(monkeypatch):
    """Scores with a bias added (or soft-capped) are not plain scaled dot products: no split."""
    calls = []
    monkeypatch.setattr(cpu_attention, "_segmented", lambda *a, **kw: calls.append(1))
    q, k, v, pos, mask = _packed(LENGTHS, torch.float32)
    bias = torch.zeros(1, 9, pos.shape[1], pos.shape[1])
    out = cpu_attention.attention(_GQA(), q, k, v, mask, position_ids=pos, scaling=0.25, position_bias=bias)[0]
    assert not calls and out.shape == (2, pos.shape[1], 9, 16)


def test_a_packed_sft_row_of_the_real_model_takes_the_split_path(tiny, monkeypatch):
    """The real model hands position ids and transformers' packed mask to the attention; the packed
    row's per-token losses equal each example alone (tests/methods_sft/test_packing.py) through it."""
    model, tok = tiny
    calls = []
    segmented = cpu_attention._segmented
    monkeypatch.setattr(cpu_attention, "_segmented", lambda *a, **kw: calls.append(1) or segmented(*a, **kw))
    ids = [tok(t)["input_ids"] for t in ("The cat sat on the mat.", "Hello there", "Why?")]
    flat = torch.tensor([sum(ids, [])])
    pos = torch.cat([torch.arange(len(x)) for x in ids])[None]
    with torch.no_grad():
        packed = model(input_ids=flat, position_ids=pos, use_cache=False).logits[0]
        alone = torch.cat([model(input_ids=torch.tensor([x]), use_cache=False).logits[0] for x in ids])
    assert len(calls) == model.config.num_hidden_layers
    torch.testing.assert_close(packed, alone, atol=1e-5, rtol=1e-5)


def test_inference_mode_is_transformers_sdpa_unchanged(monkeypatch):
    """The probes and generation run forward only, under inference mode: no split, no math kernel."""
    calls = []
    segmented = cpu_attention._segmented
    monkeypatch.setattr(cpu_attention, "_segmented", lambda *a, **kw: calls.append(1) or segmented(*a, **kw))
    q, k, v, pos, mask = _packed(LENGTHS, torch.float32)
    with torch.inference_mode():
        ours = cpu_attention.attention(_GQA(), q, k, v, mask, position_ids=pos, scaling=0.25)[0]
        ref = _masked_sdpa(q, k, v, mask)
        short = _qkv(SHORT, torch.bfloat16)
        assert torch.equal(_ours(*short), _kernel(SDPBackend.FLASH_ATTENTION, *short))
    assert not calls and torch.equal(ours, ref)
