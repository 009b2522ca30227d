"""Attention on the CPU: torch's math SDPA kernel for short sequences, its flash kernel otherwise.

Under torch 2.13, SDPA's CPU flash kernel has a slow backward for the short rows of a
fine-tuning batch. It is ~18% of an SFT+LoRA step on SmolLM2, against 2% for its forward
(`benchmarks/profile_step.py`). The math kernel is the plain matmul–softmax–matmul. In
bf16 it computes as accurately as flash: the gradient error against fp64 was 0.50% vs 0.57%
(relative norm, 4×9×128×64). Speed, forward + backward, bf16, 9 heads of 64, 2 threads
(`benchmarks/results/vs_trl.md`):

| rows × tokens | 4×32 | 4×96 | 4×160 | 4×224 | 8×96 | 8×192 |
|---|---|---|---|---|---|---|
| flash ÷ math time | 2.2 | 1.9 | 1.3 | 0.75 | 2.0 | 0.8 |

The math kernel's forward alone is slower (~3× at 96 tokens), and in eval mode nothing needs a
backward. So the math kernel is used only by a module in training mode, when the keys are at
most `SHORT` tokens and there is more than one query. Training mode, not grad, is the test. A
LoRA policy's forward with grad and its reference's forward without grad (the same model,
adapter off, in the same training step) then use the same kernel and give the same numbers,
so DPO's implicit reward still starts at exactly 0. A separate reference model (full
fine-tuning) is kept in eval mode by TRL: there the two differ by kernel rounding.
Eval-mode forwards (evaluation, probes, decoding, a merged model's logits) are
transformers' SDPA exactly as before. Registered with transformers' `AttentionInterface` under
`NAME`. It is not saved in a model's config. On other devices it is transformers' own SDPA.
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
    if module.training and query.device.type == "cpu" and query.shape[-2] > 1 and key.shape[-2] <= SHORT:
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
