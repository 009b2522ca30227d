"""A LoRA run's frozen base weights, cast to bf16 once for its autocast forwards on the CPU.

Under bf16 autocast every linear layer casts its fp32 weight to bf16 on every call. Autocast
caches that cast only for weights that require grad. So a LoRA run's frozen base weights,
which are most of the model, are cast again at every forward: 210 casts per forward on
SmolLM2 (`benchmarks/profile_step.py`).

`use_frozen_bf16(trainer)` casts them once. It then gives each wrapped base layer a forward
that, under CPU bf16 autocast, multiplies by the bf16 copy. That is the same bf16 weight autocast
would have made, so loss and gradients stay the same bit for bit
(tests/foundation/test_frozen_bf16.py). Outside autocast the layer uses its fp32 weight as
before: TRL's generation in GRPO, fp32 evaluation code. The parameters themselves are never
replaced, so state dicts, checkpoints, merges and the evaluation's decoding copy (which drops
instance forwards) see the fp32 model. `release()` removes the forwards when training ends.
The cost is the bf16 copies, half the size of the frozen linears.

Only plain LoRA is eligible. DoRA and the other PEFT types read the base weight outside the
layer's forward (DoRA's weight norm, OFT's rotation).
`WORKBENCH_FROZEN_BF16=0` turns it off (benchmarks compare with and without).
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from ..models.decoding import free_memory_bytes, plain_lora


def frozen_linears(model) -> list[torch.nn.Linear]:
    """The fp32 linear layers that LoRA wraps and training does not change."""
    from peft.tuners.lora import LoraLayer

    out = []
    for module in model.modules():
        base = getattr(module, "base_layer", None) if isinstance(module, LoraLayer) else None
        if isinstance(base, torch.nn.Linear) and all(
                not p.requires_grad and p.dtype == torch.float32 for p in base.parameters(recurse=False)):
            out.append(base)
    return out


def _forward(layer: torch.nn.Linear, weight: torch.Tensor, bias: torch.Tensor | None):
    def forward(x):
        if torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16:
            return F.linear(x, weight, bias)
        return F.linear(x, layer.weight, layer.bias)
    return forward


class FrozenBf16:
    """The bf16 copies and the forwards that use them; `release()` restores the layers' own."""

    def __init__(self, linears: list[torch.nn.Linear]):
        self.layers = linears
        for layer in linears:
            bias = None if layer.bias is None else layer.bias.detach().to(torch.bfloat16)
            layer.forward = _forward(layer, layer.weight.detach().to(torch.bfloat16), bias)

    def release(self) -> None:
        for layer in self.layers:
            vars(layer).pop("forward", None)
        self.layers = []


def use_frozen_bf16(trainer, bf16: bool) -> FrozenBf16 | None:
    """Install the bf16 forwards on a trainer's plain-LoRA model for a bf16 run on the CPU; None where
    it does not apply or there is not enough free memory for the copies (twice their size)."""
    model = getattr(trainer, "model", None)
    if (not bf16 or model is None or os.environ.get("WORKBENCH_FROZEN_BF16") == "0"
            or next(model.parameters()).device.type != "cpu" or not plain_lora(model)):
        return None
    linears = frozen_linears(model)
    size = sum(p.numel() * 2 for m in linears for p in m.parameters(recurse=False))
    free = free_memory_bytes()
    if not linears or (free is not None and free < 2 * size):
        return None
    return FrozenBf16(linears)
