"""bf16 linear layers of a CPU decoding copy with their weights packed once for oneDNN.

A bf16 matmul on the CPU goes through oneDNN, which re-lays the weight out into its blocked
format at every call. At decoding sizes that costs more than the arithmetic: a 1536×576 bf16
linear took ~190 µs whether 1 or 16 rows went through it (9 GB/s of weights, a third of this
machine's read bandwidth), ~125 µs with the weight packed beforehand. Packing is what
torch's own compiler does for CPU linears (`torch.ops.mkldnn._reorder_linear_weight` and
`_linear_pointwise`); here it is done once when the decoding copy is made.

The packed path must give the same numbers as the plain one, and it does not at every size:
on the Xeon above a 576×576 linear differed at 400 rows (a prefill of 8 prompts × 50 tokens)
and nowhere else from 1 to 40 rows, and a probe at batch 8 decoded other tokens. So only
decode steps (one new position per row, at most `MAX_ROWS` rows) take it, and the first time
a weight shape meets a number of rows in this process, its output is compared with `F.linear`
on that real input; a shape and size that differ in one bit stay plain from then on. (Equal
outputs on one input are strong evidence, not proof, of the same kernel.) Prefills are plain.
On the 2-core Xeon the demo probe's decode took 0.88–0.90× the time at 16 rows and 0.83× at one row,
tokens and logits bit-identical (`benchmarks/bench_decode_ab.py --change prepack`,
benchmarks/results/shift.md). `WORKBENCH_PREPACK=0` turns it off.
"""
from __future__ import annotations

import os
import types

import torch
import torch.nn.functional as F

OPT_OUT_ENV = "WORKBENCH_PREPACK"


MAX_ROWS = 64
# (out features, in features, has bias, rows) -> whether the packed output equalled F.linear's
_verdicts: dict[tuple, bool] = {}


def _packed_forward(self, x: torch.Tensor) -> torch.Tensor:
    rows = x.numel() // x.shape[-1]
    if x.dim() < 2 or x.shape[-2] != 1 or rows > MAX_ROWS:  # not a decode step: the plain kernel
        return F.linear(x, self.weight, self.bias)
    key = (*self.weight.shape, self.bias is not None, rows)
    verdict = _verdicts.get(key)
    if verdict is False:
        return F.linear(x, self.weight, self.bias)
    out = torch.ops.mkldnn._linear_pointwise(x.to(torch.bfloat16), self.workbench_packed_weight, self.bias,
                                              "none", [], "")
    if verdict is None:
        plain = F.linear(x, self.weight, self.bias)
        _verdicts[key] = torch.equal(out, plain)
        return plain
    return out


def prepack_bf16_linears(model: torch.nn.Module) -> int:
    """Give each bf16 CPU `nn.Linear` of `model` (an inference copy: nothing trains it) a oneDNN-
    packed copy of its weight for decode steps, where that gives the same outputs (above). The
    parameters stay as they are. Returns how many linears were packed."""
    if os.environ.get(OPT_OUT_ENV, "").strip() == "0" or not torch.backends.mkldnn.is_available():
        return 0
    mkldnn = torch.ops.mkldnn
    if not (hasattr(mkldnn, "_reorder_linear_weight") and hasattr(mkldnn, "_linear_pointwise")):
        return 0
    packed = 0
    for module in model.modules():
        w = getattr(module, "weight", None)
        if not isinstance(module, torch.nn.Linear) or w is None or w.dtype != torch.bfloat16 \
                or w.device.type != "cpu" or (module.bias is not None and module.bias.dtype != torch.bfloat16):
            continue
        try:
            module.workbench_packed_weight = mkldnn._reorder_linear_weight(w.detach(), 16)  # 16: a typical batch
        except RuntimeError:  # a oneDNN build without bf16 support
            return packed
        module.forward = types.MethodType(_packed_forward, module)
        packed += 1
    return packed
