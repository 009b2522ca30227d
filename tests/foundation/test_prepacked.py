"""The bf16 decoding copy's prepacked linears (workbench/models/prepacked.py): bit-identical
to the plain bf16 copy in a real decode, checked per weight shape and row count, and off with
WORKBENCH_PREPACK=0."""
import pytest
import torch

from workbench.models import prepacked
from workbench.models.decoding import decoding_copy
from workbench.models.prepacked import prepack_bf16_linears

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")


def _decode(model):
    ids = torch.tensor([[0, 0, 1, 15, 27, 99], [1, 8, 3, 44, 52, 61]])
    mask = (ids != 0).long()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=10, do_sample=False, pad_token_id=0,
                             eos_token_id=None, return_dict_in_generate=True, output_logits=True)
    return out.sequences, torch.stack(out.logits, 1)


def test_packed_copy_decodes_bit_identically(tiny, monkeypatch):
    model, _ = tiny
    monkeypatch.setenv("WORKBENCH_PREPACK", "0")
    plain = decoding_copy(model, merge=False, bf16=True)
    monkeypatch.delenv("WORKBENCH_PREPACK")
    packed = decoding_copy(model, merge=False, bf16=True)
    linears = [m for m in packed.modules() if isinstance(m, torch.nn.Linear)]
    assert all(hasattr(m, "workbench_packed_weight") for m in linears)
    assert not any(hasattr(m, "workbench_packed_weight") for m in plain.modules())
    a, b = _decode(plain), _decode(packed)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert all(p.dtype == torch.bfloat16 for m in linears for p in m.parameters())  # parameters untouched


def test_a_size_whose_packed_output_differs_stays_plain():
    """Packed outputs are compared with F.linear the first time a shape meets a number of rows;
    one that differs (here: the packed weight of another matrix) is never used. Prefills (more
    than one position per row) are always plain."""
    g = torch.Generator().manual_seed(0)
    layer = torch.nn.Linear(32, 48, bias=False).to(torch.bfloat16)
    assert prepack_bf16_linears(layer) == 1
    other = torch.randn(48, 32, generator=g).to(torch.bfloat16)
    layer.workbench_packed_weight = torch.ops.mkldnn._reorder_linear_weight(other, 16)
    prepacked._verdicts.pop((48, 32, False, 5), None)
    step, prefill = torch.randn(5, 1, 32, generator=g).to(torch.bfloat16), torch.randn(2, 7, 32, generator=g)
    with torch.inference_mode():
        for x in (step, step, prefill.to(torch.bfloat16)):
            assert torch.equal(layer(x), torch.nn.functional.linear(x, layer.weight))
    assert prepacked._verdicts[(48, 32, False, 5)] is False
    prepacked._verdicts.pop((48, 32, False, 5))


def test_only_bf16_cpu_linears_and_the_opt_out(monkeypatch):
    layers = torch.nn.Sequential(torch.nn.Linear(32, 48), torch.nn.Linear(48, 8).to(torch.bfloat16))
    monkeypatch.setenv("WORKBENCH_PREPACK", "0")
    assert prepack_bf16_linears(layers) == 0
    monkeypatch.delenv("WORKBENCH_PREPACK")
    assert prepack_bf16_linears(layers) == 1  # the fp32 linear is left alone
    x = torch.randn(3, 1, 48).to(torch.bfloat16)
    with torch.inference_mode():
        want = torch.nn.functional.linear(x, layers[1].weight, layers[1].bias)
        for _ in range(2):  # the first call checks, the second uses the packed weight
            assert torch.equal(layers[1](x), want)
