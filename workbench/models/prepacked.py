"""Linear layers of a CPU decoding copy with their weights packed for the decode steps.

Decoding runs every linear on a handful of rows (one new position per sequence), and at those
sizes the library's default path spends more on the weight's layout than on the arithmetic:
- bf16 goes through oneDNN, which re-lays the weight out into its blocked format at every call:
  a 1536×576 linear took ~190 µs whether 1 or 16 rows went through it (9 GB/s of weights, a
  third of this machine's read bandwidth), ~125 µs with the weight packed once beforehand
  (`torch.ops.mkldnn._reorder_linear_weight` / `_linear_pointwise`);
- fp32 goes to MKL's sgemm for x·Wᵀ (the layout `nn.Linear` stores), which is slow at 4–32 rows
  on an Ice Lake Xeon (2 cores; the bf16 figures above are from a Xeon with AMX): with 2
  threads a 576×576 linear took 240–310 µs at 4–32 rows and 43–57 µs
  packed by MKL's packed-GEMM API for that row count; SmolLM2's 49152×576 LM head took 25 ms at
  16 rows, 8 ms packed (`torch.ops.mkl._mkl_reorder_linear_weight` / `_mkl_linear`). MKL packs
  for one row count, so a layer packs when a decode step first brings it that many rows and
  keeps the packing of the latest count (a generate call keeps its rows to the end).
Both are what torch's own compiler does for frozen CPU linears; here they are done for the
decoding copy, which nothing trains.

The packed path must give the same numbers as the plain one, and it does not at every size:
on the Xeon above a bf16 576×576 linear differed at 400 rows (a prefill of 8 prompts × 50
tokens) and nowhere from 1 to 40 rows; fp32 ones differed at 1–2 rows, some at 4–12, one at 64.
So only decode steps (one new position per row, at most `MAX_ROWS` rows, contiguous, no
autocast) take it (a prefill's last position on its way to the LM head is a strided view, and
F.linear's result for it can differ from the same rows contiguous),
and the first time a weight's dtype and shape meet a number of rows in this process, the packed
output is compared with `F.linear` on that real input; a size that differs in one bit stays
plain from then on. (Equal outputs on one input are strong evidence, not proof, of the same
kernel.) Prefills are plain. Measured on the demo probe: `benchmarks/bench_decode_ab.py
--change prepack`, benchmarks/results/shift.md. `WORKBENCH_PREPACK=0` turns it off.
"""
from __future__ import annotations

import os
import types

import torch
import torch.nn.functional as F

OPT_OUT_ENV = "WORKBENCH_PREPACK"

MAX_ROWS = 64
# (dtype, out features, in features, has bias, rows) -> whether the packed output equalled F.linear's
_verdicts: dict[tuple, bool] = {}


def _onednn_bf16(layer: torch.nn.Linear, x: torch.Tensor, rows: int) -> torch.Tensor:
    # under autocast, as the bf16 copy decodes: x may arrive in fp32 (from a norm) like F.linear's
    return torch.ops.mkldnn._linear_pointwise(x.to(torch.bfloat16), layer.workbench_packed_weight, layer.bias,
                                              "none", [], "")


def _mkl_fp32(layer: torch.nn.Linear, x: torch.Tensor, rows: int) -> torch.Tensor:
    packed = getattr(layer, "workbench_mkl_packed", None)
    if packed is None or packed[0] != rows:  # MKL's packing is for one row count
        packed = layer.workbench_mkl_packed = (rows, torch.ops.mkl._mkl_reorder_linear_weight(layer.weight, rows))
    return torch.ops.mkl._mkl_linear(x, packed[1], layer.weight, layer.bias, rows)


_KERNELS = {torch.bfloat16: _onednn_bf16, torch.float32: _mkl_fp32}


def _is_decode_step(layer: torch.nn.Linear, x: torch.Tensor) -> bool:
    """One contiguous new position per row, few rows, nothing to differentiate; fp32 only
    outside autocast (which would compute the plain linear in bf16)."""
    if x.dim() < 2 or x.shape[-2] != 1 or x.numel() // x.shape[-1] > MAX_ROWS or not x.is_contiguous() \
            or (torch.is_grad_enabled() and x.requires_grad):  # the packed ops have no backward
        return False
    return layer.weight.dtype != torch.float32 or (x.dtype == torch.float32 and not torch.is_autocast_enabled("cpu"))


def _packed_forward(self, x: torch.Tensor) -> torch.Tensor:
    if not _is_decode_step(self, x):
        return F.linear(x, self.weight, self.bias)
    rows = x.numel() // x.shape[-1]
    key = (self.weight.dtype, *self.weight.shape, self.bias is not None, rows)
    verdict = _verdicts.get(key)
    if verdict is False:
        return F.linear(x, self.weight, self.bias)
    out = _KERNELS[self.weight.dtype](self, x, rows)
    if verdict is None:
        plain = F.linear(x, self.weight, self.bias)
        _verdicts[key] = torch.equal(out, plain)
        if not _verdicts[key]:
            vars(self).pop("workbench_mkl_packed", None)  # never used: free it
        return plain
    return out


def _onednn_packed(weight: torch.Tensor) -> torch.Tensor:
    # packed for 16 rows, a typical batch; oneDNN's packing serves any row count
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), 16)


def repack(layer: torch.nn.Linear) -> None:
    """After `layer.weight` changed in place (a decoding mirror's refresh): pack it again (bf16)
    or drop the packing so the next decode step makes it (fp32)."""
    if "workbench_packed_weight" in vars(layer):
        layer.workbench_packed_weight = _onednn_packed(layer.weight)
    vars(layer).pop("workbench_mkl_packed", None)


def _onednn() -> bool:
    mkldnn = torch.ops.mkldnn
    return torch.backends.mkldnn.is_available() and hasattr(mkldnn, "_reorder_linear_weight") \
        and hasattr(mkldnn, "_linear_pointwise")


def _mkl() -> bool:
    mkl = torch.ops.mkl
    return torch.backends.mkl.is_available() and hasattr(mkl, "_mkl_reorder_linear_weight") \
        and hasattr(mkl, "_mkl_linear")


def packing_available() -> bool:
    """Whether this torch can pack CPU linears (and the user has not turned it off)."""
    return os.environ.get(OPT_OUT_ENV, "").strip() != "0" and (_onednn() or _mkl())


def prepack_linears(model: torch.nn.Module) -> int:
    """Give each bf16 or fp32 CPU `nn.Linear` of `model` (an inference copy: nothing trains it)
    packed weights for decode steps, where that gives the same outputs (above): bf16 ones packed
    now for oneDNN, fp32 ones at their first decode step for MKL. The parameters stay as they
    are. Returns how many linears take the packed path."""
    if not packing_available():
        return 0
    onednn, mkl = _onednn(), _mkl()
    packed = 0
    for module in model.modules():
        w = getattr(module, "weight", None)
        if not isinstance(module, torch.nn.Linear) or w is None or w.device.type != "cpu" \
                or (module.bias is not None and module.bias.dtype != w.dtype):
            continue
        if w.dtype == torch.bfloat16 and onednn:
            try:
                module.workbench_packed_weight = _onednn_packed(w)
            except RuntimeError:  # a oneDNN build without bf16 support
                continue
        elif not (w.dtype == torch.float32 and mkl):
            continue
        module.forward = types.MethodType(_packed_forward, module)
        packed += 1
    return packed
