"""A private copy of a model made for decoding on the CPU.

Greedy or sampled decoding of a small model on the CPU is a chain of small matmuls, one
token at a time. Two things make it slower than it needs to be, and a copy removes both:
- a PEFT adapter adds small modules beside every targeted linear (LoRA: ~1.2–1.3× slower
  than the merged model on SmolLM2); merging them into the weights removes that;
- bf16 autocast re-casts every fp32 weight to bf16 at every step; storing the linears in
  bf16 once is ~1.6× faster at batch 4 (SmolLM2, 2 cores, measured). Autocast computes a
  linear in bf16 either way, so the copy gives the same logits bit for bit;
- at a few rows per step the default CPU kernels spend more on the weights' layout than on the
  arithmetic: the copy's linears (bf16 or fp32) use packed weights at decode steps where that
  is bit-identical (prepacked.py; an fp32 model is copied for that alone).
Merging changes the logits by float rounding only (W + s·BA once instead of Wx + s·B(Ax)).
tests/analysis/test_packed_scoring.py and tests/methods_pref/test_eval_decoding.py check both."""
from __future__ import annotations

import contextlib
import copy
import functools
import os
import weakref

import torch

from .prepacked import packing_available, prepack_linears
from .sampling import fast_sampling


def free_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not Linux
        return None


def plain_lora(model) -> bool:
    """A PEFT model whose adapters are all plain LoRA (no DoRA)."""
    from peft import PeftType

    configs = getattr(model, "peft_config", None) or {}
    return bool(configs) and all(c.peft_type == PeftType.LORA and not getattr(c, "use_dora", False)
                                 for c in configs.values())


def mergeable(model) -> bool:
    """A PEFT model whose adapters PEFT can merge into the weights (prompt learning cannot)."""
    return (hasattr(model, "merge_and_unload") and hasattr(model, "peft_config")
            and not any(c.is_prompt_learning for c in model.peft_config.values()))


def decoding_copy(model, *, merge: bool, bf16: bool, copy_to_pack: bool = True):
    """A copy of `model` in eval mode with its active PEFT adapter merged (`merge`), for bf16
    autocast (`bf16`) its linear layers stored in bf16, and its linears packed for decode steps;
    or None when there is nothing to gain, nothing PEFT can merge, too little free memory (under
    3× the model) or the model is not on the CPU (GPU decoding is not limited by this, and its
    memory is scarcer). `copy_to_pack=False`: no copy for the packing alone (an fp32 model with
    nothing to merge), where the decode may be too small to pay for the copy."""
    merge = merge and mergeable(model)
    if not (merge or bf16 or (copy_to_pack and packing_available())) or next(model.parameters()).device.type != "cpu":
        return None
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    free = free_memory_bytes()
    if free is not None and free < 3 * size:
        return None
    copied = copy.deepcopy(model)
    for module in copied.modules():
        # A TRL trainer rebinds forward on the (base) model instance, closing over the original's
        # forward: the copy would still run the original weights. Use the class's forward.
        vars(module).pop("forward", None)
    if merge:
        try:
            copied = copied.merge_and_unload()
        except (ValueError, NotImplementedError, AttributeError, TypeError):
            if not bf16:
                return None  # an adapter type PEFT cannot merge
    if bf16:
        # New parameters, so a weight tied to the embedding (SmolLM2's LM head) is untied:
        # embeddings and norms stay fp32, as autocast leaves them.
        for module in copied.modules():
            if isinstance(module, torch.nn.Linear):
                for name, p in list(module.named_parameters(recurse=False)):
                    setattr(module, name, torch.nn.Parameter(p.detach().to(torch.bfloat16), requires_grad=False))
    copied.requires_grad_(False)
    prepack_linears(copied)  # same numbers, no per-call weight re-layout (prepacked.py)
    return copied.eval()


# -- the evaluation's decoder ------------------------------------------------------------
# One decoding copy of the policy per evaluation, shared by everything that generates during
# it — the preference probes' KL samples, then the run samples — and dropped before training
# goes on. Measured on SmolLM2 + LoRA (2 cores, bf16 CPU), 32 new tokens at batch 4: 4.2 s
# from the training model in fp32, 2.0 s from the merged bf16 copy, which takes 0.5 s to make.

# the current copy: {"key": (step, bf16), "model": weakref to the model copied, "copy": the copy}
_current: dict = {}
# A model that trains with a decoding mirror (decoding_mirror.py, GRPO/RLOO on the CPU) already
# has a copy that follows its weights: an evaluation decodes from it instead of making a second.
# id(model) -> its DecodingMirror, held weakly: the trainer owns the mirror.
_mirrors: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def decoding_context(bf16: bool, on_cpu: bool = True) -> contextlib.ExitStack:
    """What a decoding copy generates under: on the CPU, bf16 autocast for a bf16 run (the
    precision the run trains at) and the inverse-CDF token draw (sampling.py)."""
    stack = contextlib.ExitStack()
    if on_cpu:
        stack.enter_context(fast_sampling())
        if bf16:
            stack.enter_context(torch.autocast("cpu", dtype=torch.bfloat16))
    return stack


def eval_decoder(model, *, step: int, bf16: bool):
    """(model, context) to decode with at this evaluation: a copy of `model` with its PEFT
    adapter merged and, when the run computes in bf16 (`bf16`), its linears stored in bf16;
    `model` itself where a copy gains nothing or cannot be made (distributed runs decode
    collectively). `context()` is `decoding_context`: on the CPU, bf16 autocast for a bf16 run
    — the precision the run trains and evaluates its loss at — and the fast token draw."""
    on_cpu = next(model.parameters()).device.type == "cpu"
    context = functools.partial(decoding_context, bf16, on_cpu)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return model, contextlib.nullcontext
    mirror = _mirrors.get(id(model))
    if mirror is not None and mirror.follows(model) and mirror.bf16 == bf16:
        mirror.sync(step)
        return mirror.copy, mirror.context
    if _current.get("key") != (step, bf16) or _current["model"]() is not model:
        _current.clear()  # the previous evaluation's copy goes first: never two in memory
        # An fp32 model with nothing to merge is not copied just to pack it: an evaluation's
        # decode is often a few rows, where packing gains little (prepacked.py).
        copied = decoding_copy(model, merge=True, bf16=bf16, copy_to_pack=False)
        _current.update(key=(step, bf16), model=weakref.ref(model), copy=copied)
    copied = _current["copy"]
    return (model if copied is None else copied), context


def release_eval_decoder() -> None:
    """Drop the current copy (the evaluation is over; training changes the weights)."""
    _current.clear()
