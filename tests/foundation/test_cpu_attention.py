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
