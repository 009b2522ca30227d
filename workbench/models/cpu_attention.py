"""Attention on the CPU: rows split into their examples' real tokens; torch's math SDPA kernel
for short sequences, its flash kernel otherwise.

**Inference mode is left alone.** The probes, generation and the Chat tab run under
`torch.inference_mode()`: forward only, where flash's forward is the fastest kernel and the
choices below only cost time (the bf16 token-shift probe was 0.92× with them,
`benchmarks/results/shift.md`). There the attention is transformers' SDPA, unchanged. Every
other forward (a training step, and a `no_grad` forward such as a DPO reference, which must
match its policy's kernel) gets the choices below.

**Padded and packed rows.** A padded batch (every unpacked training batch: rows padded to the
longest) and packed rows (SFT's `packing=true`, the probes' teacher forcing: several examples
side by side, position ids restarting at each) reach SDPA with a mask, and SDPA computes every
query against every key of the row and masks the rest away. With a mask the flash backward
was ~19% of an unpacked SFT+LoRA step and 28% of a packed one (`profile_step.py`). Here each
example's real tokens are gathered into buckets of similar length (the longest at most
`BUCKET_RATIO` × the shortest), each a padded batch attended causally with no mask (the
short-row rule below picks its kernel), and scattered back; a pad's output is zero. Only when
the mask is exactly the causal mask of the examples' real tokens (no sliding window cutting an
example, no pad inside one, no cache); anything else takes the paths below. Same values and
gradients on the real tokens up to rounding (tests/foundation/test_cpu_attention.py, against
the masked SDPA).

Under torch 2.13, SDPA's CPU flash kernel has a slow backward for the short rows of a
fine-tuning batch. It is ~18% of an SFT+LoRA step on SmolLM2, against 2% for its forward
(`benchmarks/profile_step.py`). The math kernel is the plain matmul–softmax–matmul. In
bf16 it is at least as accurate as flash: against fp64 the query gradient's error was 0.39% vs
0.44% (relative norm, 4×9×128×64). Speed, forward + backward, bf16, 9 heads of 64, 2 threads
(`benchmarks/bench_sdpa_kernels.py`, one run):

| rows × tokens | 4×32 | 4×96 | 4×160 | 4×224 | 8×96 | 8×192 |
|---|---|---|---|---|---|---|
| flash ÷ math time | 2.0 | 1.9 | 1.5 | 0.76 | 2.0 | 0.77 |

The math kernel's forward alone is slower (~4× at 96 tokens), so this is a trade made for
training. The kernel is chosen on what a forward gets, never on mode or grad: math when SDPA
runs in bf16 (a bf16 query, or CPU autocast to bf16: under a bf16 run's autocast the query
arrives in fp32 and SDPA casts it; before 2026-12-07 this rule looked at the query's dtype
only, so it never fired in autocast training), there is more than one query (not a decode
step) and the keys are at most `SHORT` tokens. A policy and its reference then use the same kernel for
the same batch: with a LoRA adapter switched off, or a separate eval-mode reference model
under the same autocast. So DPO's implicit reward still starts at exactly 0
(tests/onpolicy/test_reference_margins.py). fp32 forwards, and so a merged model's fp32
logits, are transformers' SDPA exactly as before. A bf16 evaluation's short forwards pay
the slower forward. Registered with transformers' `AttentionInterface` under `NAME`. It is
not saved in a model's config. On other devices it is transformers' own SDPA.
`WORKBENCH_CPU_ATTENTION=0` keeps "sdpa" (benchmarks compare both).
"""
from __future__ import annotations

import contextlib
import os
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

NAME = "workbench_sdpa"
SHORT = 128  # keys; the crossover measured above is between 160 and 224 tokens


def attention(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask, **kwargs):
    if torch.is_inference_mode_enabled():  # forward only: transformers' SDPA, whose flash forward is fastest
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    plan = None
    if kwargs.get("softcap") is None and kwargs.get("position_bias") is None:  # plain scaled dot products
        plan = _split_plan(attention_mask, kwargs.get("position_ids"), query)
    if plan is not None:
        return _segmented(plan, module, query, key, value, **kwargs)
    if _bf16(query) and query.device.type == "cpu" and query.shape[-2] > 1 and key.shape[-2] <= SHORT:
        with sdpa_kernel(SDPBackend.MATH):
            return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


def _bf16(query: torch.Tensor) -> bool:
    """Whether SDPA will run in bf16: a bf16 query, or CPU autocast to bf16. Under autocast the
    query arrives in fp32 (the rotary embedding multiplies the bf16 projection by fp32 cos/sin)
    and SDPA casts it down itself."""
    return query.dtype == torch.bfloat16 or (torch.is_autocast_enabled("cpu")
                                             and torch.get_autocast_dtype("cpu") == torch.bfloat16)


class _Plan(NamedTuple):
    gather: torch.Tensor  # the padded examples' tokens, bucket after bucket, as indices into rows × length
    buckets: tuple[tuple[int, int], ...]  # (examples, width) of each bucket, in that order
    scatter: torch.Tensor  # each of the rows × length tokens' place in the gathered buffer


# (mask, position ids, plan) of the latest two masks: every layer of a forward gets the same position
# ids and one of at most two masks (full and sliding-window layers). One tuple, swapped whole, so
# two threads (the app's training and a chat) never read each other's half-written entry.
_recent: tuple = ()
BUCKET_RATIO = 1.5  # a bucket's longest example is at most this × its shortest: little padding, few calls


def _split_plan(mask, position_ids, query: torch.Tensor) -> _Plan | None:
    """How to split the rows into their examples; None unless some row holds several examples
    or padding, and `mask` is exactly the causal mask of its examples' real tokens. Worked out
    once per forward."""
    if (mask is None or query.device.type != "cpu" or mask.dtype != torch.bool or query.shape[-2] < 2
            or mask.shape[-1] != query.shape[-2] or mask.shape[-2] != query.shape[-2]):  # a cache: more keys
        return None
    global _recent
    recent = _recent
    for seen_mask, seen_ids, plan in recent:
        if seen_mask is mask and seen_ids is position_ids:
            return plan
    plan = _plan(mask, position_ids, query.shape[0])
    _recent = ((mask, position_ids, plan), *recent[:1])
    return plan


def _plan(mask: torch.Tensor, position_ids: torch.Tensor | None, rows: int) -> _Plan | None:
    length = mask.shape[-1]
    real = mask[:, 0].diagonal(dim1=-2, dim2=-1).expand(rows, length)  # a real token sees itself; a pad does not
    if position_ids is None or position_ids.shape[-1] != length:
        example = torch.zeros(rows, length, dtype=torch.long)
    else:  # an example starts where the position does not follow on (transformers' find_packed_sequence_indices)
        pos = position_ids.expand(rows, length)
        example = (torch.diff(pos, prepend=pos[:, :1] - 1, dim=-1) != 1).cumsum(-1)  # 0, 0, 1, 1, 1, 2, …
    if bool(real.all()) and not bool((example[:, -1] > 0).any()):  # one whole example per row
        return None
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    expected = (example[:, None, :, None] == example[:, None, None, :]) & causal & real[:, None, None, :]
    if not torch.equal(mask.expand_as(expected), expected):  # a sliding window, a bidirectional prefix, …
        return None
    ids = torch.where(real, example + torch.arange(rows)[:, None] * length, -1).flatten()  # -1: a pad
    key, owner, counts = torch.unique_consecutive(ids, return_inverse=True, return_counts=True)
    runs = key >= 0  # a run of one example's real tokens
    if int(runs.sum()) != torch.unique(key[runs]).numel():  # an example split by padding inside it
        return None
    starts = (torch.cumsum(counts, 0) - counts).tolist()
    counts, runs = counts.tolist(), runs.tolist()
    gather, buckets, place = [], [], [0] * len(counts)  # place: where each run's first token lands
    order = sorted((r for r in range(len(counts)) if runs[r]), key=counts.__getitem__)
    i = 0
    while i < len(order):  # shortest first; a bucket takes examples up to BUCKET_RATIO × its first
        j = i
        while j < len(order) and counts[order[j]] <= BUCKET_RATIO * counts[order[i]]:
            j += 1
        width = counts[order[j - 1]]
        for e in order[i:j]:
            place[e] = len(gather)
            # right padding repeats the example's last token: causal attention keeps pads out of real rows
            gather += [starts[e] + min(t, counts[e] - 1) for t in range(width)]
        buckets.append((j - i, width))
        i = j
    first = torch.tensor(place)[owner] - torch.tensor(starts)[owner]  # token t lands at first[t] + t
    scatter = first + torch.arange(rows * length)
    scatter[~real.flatten()] = len(gather)  # a pad reads the zero row after the buckets
    return _Plan(torch.tensor(gather), tuple(buckets), scatter)


def _segmented(plan: _Plan, module, query, key, value, dropout: float = 0.0, scaling: float | None = None,
               **kwargs):
    """The examples as padded batches of similar length, causal attention without a mask, back
    to transformers' (rows, length, heads, dim) layout. Within a bucket, right padding and a
    causal mask: a real query never sees the bucket's padding, whose outputs are dropped.
    index_select both ways: its backward is a plain index_add."""
    rows, heads, length, dim = query.shape

    def tokens(x):  # (rows, h, length, dim) -> the gathered (padded tokens, h, dim)
        return x.transpose(1, 2).reshape(rows * length, x.shape[1], dim).index_select(0, plan.gather)

    q, k, v = tokens(query), tokens(key), tokens(value)
    outs, at = [], 0
    for count, width in plan.buckets:
        def part(x):
            return x[at:at + count * width].view(count, width, x.shape[1], dim).transpose(1, 2)

        math = _bf16(query) and width <= SHORT
        with sdpa_kernel(SDPBackend.MATH) if math else contextlib.nullcontext():
            out = F.scaled_dot_product_attention(part(q), part(k), part(v), dropout_p=dropout, scale=scaling,
                                                 is_causal=True, enable_gqa=key.shape[1] != heads)
        outs.append(out.transpose(1, 2).reshape(count * width, heads, dim))
        at += count * width
    # what a pad gets (transformers' kernels give it whatever its masked row makes); the SDPA's dtype
    outs.append((outs[0] if outs else query).new_zeros((1, heads, dim)))
    return torch.cat(outs).index_select(0, plan.scatter).view(rows, length, heads, dim), None


AttentionInterface.register(NAME, attention)
AttentionMaskInterface.register(NAME, sdpa_mask)  # the same masks as "sdpa"


def use_cpu_attention(model) -> bool:
    """Switch a model that runs transformers' SDPA on the CPU to `attention`; False otherwise."""
    if (getattr(model.config, "_attn_implementation", None) != "sdpa" or model.device.type != "cpu"
            or os.environ.get("WORKBENCH_CPU_ATTENTION") == "0"):
        return False
    model.set_attn_implementation(NAME)
    return True
