"""bf16 linear layers of a CPU decoding copy with their weights packed once for oneDNN.

A bf16 matmul on the CPU goes through oneDNN, which re-lays the weight out into its blocked
format at every call. At decoding sizes that costs more than the arithmetic: a 1536×576 bf16
linear took ~190 µs whether 1 or 16 rows went through it (9 GB/s of weights, a third of this
machine's read bandwidth), ~125 µs with the weight packed beforehand. Packing is what
torch's own compiler does for CPU linears (`torch.ops.mkldnn._reorder_linear_weight` and
`_linear_pointwise`); here it is done once when the decoding copy is made.

The packed path must give the same numbers as the plain one: for every distinct weight shape
it is checked against `F.linear` on two inputs (1 row and 33) when the copy is made, and a
shape that differs even in one bit is left unpacked. On the 2-core Intel Xeon (AMX) the demo
probe's tokens and logits were bit-identical and its bf16 decode took 0.83–0.87× the time
(`benchmarks/bench_decode_ab.py --change prepack`, benchmarks/results/shift.md).
`WORKBENCH_PREPACK=0` turns it off.
"""
from __future__ import annotations

import os
import types

import torch
import torch.nn.functional as F

OPT_OUT_ENV = "WORKBENCH_PREPACK"


def _packed_forward(self, x: torch.Tensor) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x.to(torch.bfloat16), self.workbench_packed_weight, self.bias,
                                               "none", [], "")


def _same_numbers(weight: torch.Tensor, packed, bias) -> bool:
    g = torch.Generator().manual_seed(0)
    for rows in (1, 33):
        x = torch.randn(rows, weight.shape[1], generator=g).to(torch.bfloat16)
        got = torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [], "")
        if not torch.equal(got, F.linear(x, weight, bias)):
            return False
    return True


def prepack_bf16_linears(model: torch.nn.Module) -> int:
    """Give each bf16 CPU `nn.Linear` of `model` (an inference copy: nothing trains it) a forward
    on a oneDNN-packed copy of its weight, where that gives bit-identical outputs. The
    parameters stay as they are. Returns how many linears were packed."""
    if os.environ.get(OPT_OUT_ENV, "").strip() == "0" or not torch.backends.mkldnn.is_available():
        return 0
    mkldnn = torch.ops.mkldnn
    if not (hasattr(mkldnn, "_reorder_linear_weight") and hasattr(mkldnn, "_linear_pointwise")):
        return 0
    verdict: dict[tuple, bool] = {}
    packed = 0
    for module in model.modules():
        w = getattr(module, "weight", None)
        if not isinstance(module, torch.nn.Linear) or w is None or w.dtype != torch.bfloat16 \
                or w.device.type != "cpu" or (module.bias is not None and module.bias.dtype != torch.bfloat16):
            continue
        try:
            weight = mkldnn._reorder_linear_weight(w.detach(), 16)  # 16: a typical decoding batch
            key = (tuple(w.shape), module.bias is not None)
            if key not in verdict:
                verdict[key] = _same_numbers(w.detach(), weight, None if module.bias is None else module.bias.detach())
        except RuntimeError:  # a oneDNN build without bf16 support
            return packed
        if verdict[key]:
            module.workbench_packed_weight = weight
            module.forward = types.MethodType(_packed_forward, module)
            packed += 1
    return packed
