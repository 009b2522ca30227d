"""The decoding copy's prepacked linears (workbench/models/prepacked.py): bit-identical to the
plain copy in a real decode in bf16 (oneDNN) and fp32 (MKL), checked per dtype, weight shape
and row count, and off with WORKBENCH_PREPACK=0."""
import contextlib

import pytest
import torch

from workbench.models import prepacked
from workbench.models.decoding import decoding_copy
from workbench.models.prepacked import prepack_linears

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available() or not torch.backends.mkl.is_available(),
                                reason="torch built without oneDNN or MKL")


def _decode(model, bf16: bool):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 250, (16, 6), generator=g)  # 16 rows: a size where fp32 packing is exact here
    ids[0, :2] = 0
    mask = (ids != 0).long()
    context = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with torch.inference_mode(), context:
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=10, do_sample=False, pad_token_id=0,
                             eos_token_id=None, return_dict_in_generate=True, output_logits=True)
    return out.sequences, torch.stack(out.logits, 1)


@pytest.mark.parametrize("bf16", [True, False], ids=["bf16-onednn", "fp32-mkl"])
def test_packed_copy_decodes_bit_identically(tiny, monkeypatch, bf16):
    """The same copy decoded packed, then with every packed size refused: its plain kernels on the
    same tensors. (Against the model itself fp32 logits can differ in the last bit at the prefill:
    a copy's parameters require no grad, and F.linear then takes another path for the strided
    last position, with or without packing.)"""
    model, _ = tiny
    monkeypatch.setenv("WORKBENCH_PREPACK", "0")
    unpacked = decoding_copy(model, merge=False, bf16=bf16)
    assert (unpacked is not None) == bf16  # an fp32 model is copied only to pack it
    assert unpacked is None or not any("forward" in vars(m) for m in unpacked.modules())
    monkeypatch.delenv("WORKBENCH_PREPACK")
    packed = decoding_copy(model, merge=False, bf16=bf16)
    linears = [m for m in packed.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all("forward" in vars(m) for m in linears)
    dtype = torch.bfloat16 if bf16 else torch.float32
    saved = dict(prepacked._verdicts)
    try:
        for key in [k for k in prepacked._verdicts if k[0] == dtype]:
            prepacked._verdicts.pop(key)  # this test's decode decides them again
        a = _decode(packed, bf16)
        decided = {k: v for k, v in prepacked._verdicts.items() if k[0] == dtype}
        assert any(v for k, v in decided.items() if k[-1] == 16)  # the packed path ran
        prepacked._verdicts.update(dict.fromkeys(decided, False))
        b = _decode(packed, bf16)
    finally:
        prepacked._verdicts.clear()
        prepacked._verdicts.update(saved)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert all(p.dtype == dtype for m in linears for p in m.parameters())  # parameters untouched


def _wrong_packing(layer, other, rows):
    if layer.weight.dtype == torch.bfloat16:
        layer.workbench_packed_weight = torch.ops.mkldnn._reorder_linear_weight(other, 16)
    else:
        layer.workbench_mkl_packed = (rows, torch.ops.mkl._mkl_reorder_linear_weight(other, rows))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32], ids=["bf16", "fp32"])
def test_a_size_whose_packed_output_differs_stays_plain(dtype):
    """Packed outputs are compared with F.linear the first time a shape meets a number of rows;
    one that differs (here: the packed weight of another matrix) is never used. Prefills (more
    than one position per row) and strided inputs are always plain."""
    g = torch.Generator().manual_seed(0)
    layer = torch.nn.Linear(32, 48, bias=False).to(dtype)
    assert prepack_linears(layer) == 1
    _wrong_packing(layer, torch.randn(48, 32, generator=g).to(dtype), 5)
    key = (dtype, 48, 32, False, 5)
    prepacked._verdicts.pop(key, None)
    step = torch.randn(5, 1, 32, generator=g).to(dtype)
    prefill = torch.randn(2, 7, 32, generator=g).to(dtype)
    strided = torch.randn(5, 3, 32, generator=g).to(dtype)[:, -1:]
    with torch.inference_mode():
        for x in (step, step, prefill, strided):
            assert torch.equal(layer(x), torch.nn.functional.linear(x, layer.weight))
    assert prepacked._verdicts.pop(key) is False
    assert "workbench_mkl_packed" not in vars(layer)  # a refused packing is not kept


def test_cpu_linears_of_both_dtypes_the_opt_out_and_autocast(monkeypatch):
    layers = torch.nn.Sequential(torch.nn.Linear(32, 48), torch.nn.Linear(48, 8).to(torch.bfloat16),
                                 torch.nn.Linear(8, 8).to(torch.float16))
    monkeypatch.setenv("WORKBENCH_PREPACK", "0")
    assert prepack_linears(layers) == 0
    monkeypatch.delenv("WORKBENCH_PREPACK")
    assert prepack_linears(layers) == 2  # fp16 is left alone
    for layer, x in ((layers[0], torch.randn(16, 1, 32)), (layers[1], torch.randn(3, 1, 48).to(torch.bfloat16))):
        with torch.inference_mode():
            want = torch.nn.functional.linear(x, layer.weight, layer.bias)
            for _ in range(2):  # the first call checks, the second uses the packed weight
                assert torch.equal(layer(x), want)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):  # autocast: the plain bf16 kernel
        x = torch.randn(4, 1, 32)
        assert torch.equal(layers[0](x), torch.nn.functional.linear(x, layers[0].weight, layers[0].bias))


def test_an_input_that_needs_a_gradient_takes_the_plain_kernel():
    layer = torch.nn.Linear(32, 48)
    prepack_linears(layer)
    x = torch.randn(16, 1, 32, requires_grad=True)
    out = layer(x)  # the packed ops have no backward
    out.sum().backward()
    assert x.grad is not None and torch.equal(out, torch.nn.functional.linear(x, layer.weight, layer.bias))
