"""Attention on the CPU: torch's math SDPA kernel for short sequences, its flash kernel otherwise.

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
training. The kernel is chosen on what a forward gets, never on mode or grad: math when the
query is bf16 (a bf16 run's autocast), there is more than one query (not a decode step) and
the keys are at most `SHORT` tokens. A policy and its reference then use the same kernel for
the same batch: with a LoRA adapter switched off, or a separate eval-mode reference model
under the same autocast. So DPO's implicit reward still starts at exactly 0
(tests/onpolicy/test_reference_margins.py). fp32 forwards, and so a merged model's fp32
logits, are transformers' SDPA exactly as before. A bf16 evaluation's short forwards pay
the slower forward. Registered with transformers' `AttentionInterface` under `NAME`. It is
not saved in a model's config. On other devices it is transformers' own SDPA.
`WORKBENCH_CPU_ATTENTION=0` keeps "sdpa" (benchmarks compare both).
"""
from __future__ import annotations

import os

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import sdpa_mask

NAME = "workbench_sdpa"
SHORT = 128  # keys; the crossover measured above is between 160 and 224 tokens


def attention(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask, **kwargs):
    if (query.dtype == torch.bfloat16 and query.device.type == "cpu" and query.shape[-2] > 1
            and key.shape[-2] <= SHORT):
        with sdpa_kernel(SDPBackend.MATH):
            return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


AttentionInterface.register(NAME, attention)
AttentionMaskInterface.register(NAME, sdpa_mask)  # the same masks as "sdpa"


def use_cpu_attention(model) -> bool:
    """Switch a model that runs transformers' SDPA on the CPU to `attention`; False otherwise."""
    if (getattr(model.config, "_attn_implementation", None) != "sdpa" or model.device.type != "cpu"
            or os.environ.get("WORKBENCH_CPU_ATTENTION") == "0"):
        return False
    model.set_attn_implementation(NAME)
    return True
