"""Full-weight runs: merge parameter by parameter with the method's combiner (PEFT's
merge utilities) over the runs' weights or their task vectors τ_i = W_i − W_base."""
from __future__ import annotations

from typing import Callable

import torch


def merge_state_dicts(states: list[dict], weights: list[float], combine: Callable, *,
                      base: dict | None = None) -> dict:
    """{name: merged tensor}. With `base`, `combine` sees the task vectors and the result
    is base + combine(τ); without, it sees the weights themselves. Non-float entries
    (buffers) are taken from the first state; a tensor shared by two names (tied
    embeddings) is merged once, so a random method (DARE) keeps them tied."""
    out, seen = {}, {}
    ref = base if base is not None else states[0]
    for name, ref_t in ref.items():
        key = (ref_t.data_ptr(), ref_t.shape) if ref_t.numel() else None
        if key is not None and key in seen:
            out[name] = out[seen[key]]
            continue
        if not torch.is_floating_point(ref_t):
            out[name] = states[0][name].clone()
        else:
            ts = [s[name].float() for s in states]
            if base is not None:
                b = ref_t.float()
                merged = b + combine([t - b for t in ts], weights)
            else:
                merged = combine(ts, weights)
            out[name] = merged.to(ref_t.dtype)
        if key is not None:
            seen[key] = name
    return out


def load_full(path: str, device: str | None = None):
    from transformers import AutoModelForCausalLM

    from ..models import pick_device

    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    return model.to(pick_device(device)).eval()
