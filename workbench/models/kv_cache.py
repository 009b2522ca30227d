"""A KV cache that appends in place, for decoding a known number of tokens.

transformers' DynamicCache appends each step's keys and values with `torch.cat`, which copies
the whole cache of every layer at every step. Once the cache no longer fits in the CPU's caches
(SmolLM2 at batch 16: 30 layers × 2 × ~1.5 MB) that copy runs at memory speed, and it was the
largest cost after the matmuls in a CPU decode step. Here each layer reserves room for the
prompt plus the new tokens once and writes each step's keys and values into it; attention reads
a view of the filled part. The values and the order of every operation on them are the same, so
the logits are bit-identical (tested). On 2 cores, 16 prompts of the demo run, a decode took
0.87–0.95× the time (64–256 new tokens, bf16 and fp32; `benchmarks/bench_decode_ab.py --change kv-cache`,
benchmarks/results/shift.md).
"""
from __future__ import annotations

import inspect

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer


class ReservedLayer(DynamicLayer):
    """A DynamicLayer whose keys and values are views into a buffer of `capacity` positions."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self._buffers: tuple[torch.Tensor, torch.Tensor] | None = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        length, new = self.get_seq_length(), key_states.shape[-2]
        buffers = self._buffers
        # Anything that replaced the views (beam reordering, batch selection), other shapes or
        # dtypes, or a longer decode than reserved: a new buffer from what the layer holds now.
        if buffers is None or not _fits(buffers[0], self.keys, key_states, length + new) \
                or not _fits(buffers[1], self.values, value_states, length + new):
            # past the reservation: double, so an underestimate still copies O(log n) times, not n
            capacity = self.capacity if length + new <= self.capacity else 2 * (length + new)
            buffers = tuple(s.new_empty(*s.shape[:-2], capacity, s.shape[-1]) for s in (key_states, value_states))
            if length:
                buffers[0][..., :length, :].copy_(self.keys)
                buffers[1][..., :length, :].copy_(self.values)
            self._buffers = buffers
        buffers[0][..., length:length + new, :].copy_(key_states)
        buffers[1][..., length:length + new, :].copy_(value_states)
        self.keys, self.values = buffers[0][..., :length + new, :], buffers[1][..., :length + new, :]
        return self.keys, self.values

    def reset(self) -> None:
        self._buffers = None
        super().reset()


def _fits(buffer: torch.Tensor, held: torch.Tensor, states: torch.Tensor, total: int) -> bool:
    """Whether `states` can be appended in `buffer`: same rows, heads, head size and dtype, room for
    `total` positions, and what the layer holds is still the buffer's leading view (a crop keeps it)."""
    same = (buffer.shape[:-2] == states.shape[:-2] and buffer.shape[-1] == states.shape[-1]
            and buffer.dtype == states.dtype and total <= buffer.shape[-2])
    return same and (held.numel() == 0 or (held.data_ptr() == buffer.data_ptr() and held.stride() == buffer.stride()))


def reserved_cache(model, capacity: int) -> DynamicCache | None:
    """A cache for `model.generate` (see reserved_cache_kwargs) reserving `capacity` positions per layer
    (prompt length + max_new_tokens), or None (generate then makes its own) where the model's
    cache is not plain full-attention layers (sliding windows, linear attention) or a
    prompt-learning adapter supplies its own past key values."""
    config = getattr(model, "config", None)
    peft_config = getattr(model, "active_peft_config", None)
    if config is None or (peft_config is not None and getattr(peft_config, "is_prompt_learning", False)):
        return None
    try:
        cache = DynamicCache(config=config)
    except Exception:  # noqa: BLE001 — an architecture transformers cannot describe: its default cache
        return None
    if not cache.layers or any(type(layer) is not DynamicLayer for layer in cache.layers):
        return None
    cache.layers = [ReservedLayer(capacity) for _ in cache.layers]
    return cache


def reserved_cache_kwargs(model, capacity: int) -> dict:
    """`model.generate(**reserved_cache_kwargs(model, n))`: the reserved cache under the keyword
    this transformers takes (`cache`; `past_key_values` before the rename), or nothing."""
    cache = reserved_cache(model, capacity)
    if cache is None:
        return {}
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    forward = inspect.signature(type(base).forward).parameters
    return {"cache" if "cache" in forward else "past_key_values": cache}
