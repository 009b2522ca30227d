"""What every preference method shares: the probe knobs, the reference model decision,
and the TRL trainer wiring (probe rows, reference context) after construction.

Reference handling (the same for every method that has one):
- PEFT run (a `peft_config`, or a model that already is a `peft.PeftModel`, as the
  on-policy loop passes from round to round): no copy; TRL's own mechanism is the
  reference. Given a PeftModel and `ref_model=None`, TRL's DPO/KTO trainers copy the
  current adapter into a frozen "ref" adapter (the policy at the start of training) and
  score the reference by switching to it; with a fresh `peft_config` there is no "ref"
  adapter and the reference is the policy with its adapter disabled. Either way the
  policy and the reference run the same forward under the same autocast.
- full fine-tuning: a frozen deep copy of the starting model.
- precompute_ref_log_probs=True: TRL scores the training set with the reference once
  before training; under full fine-tuning no copy is kept (the probes then report no
  reference-based values)."""
from __future__ import annotations

import contextlib
import copy
import warnings
from dataclasses import dataclass, field
from types import SimpleNamespace

from peft import PeftModel
from trl.trainer.utils import use_adapter

from ..errors import WorkbenchError
from .base import MethodArgs, at_least, positive

REF_ADAPTER = "ref"  # the name TRL gives its copy of the starting adapter


@dataclass
class ProbeArgs(MethodArgs):
    """Knobs of the eval-time probes (see workbench.methods.preference_metrics)."""
    probe_pairs: int = field(default=64, metadata={
        "help": "held-out pairs scored for ranking accuracy at each eval (0 = off)"})
    probe_kl_prompts: int = field(default=4, metadata={
        "help": "held-out prompts sampled for KL-to-reference and sample length at each eval (0 = off)"})
    probe_max_new_tokens: int = field(default=32, metadata={"help": "max tokens per probe sample"})
    eval_on_start: bool = field(default=True, metadata={
        "help": "evaluate (and probe) before the first step, so every curve has its starting value"})

    def __post_init__(self):
        super().__post_init__()
        at_least(self, 0, "probe_pairs", "probe_kl_prompts")
        at_least(self, 1, "probe_max_new_tokens")


@dataclass
class ReferenceArgs(ProbeArgs):
    beta: float = field(default=0.1, metadata={
        "help": "β: strength of the pull toward the reference (higher = stay closer)"})
    precompute_ref_log_probs: bool = field(default=False, metadata={
        "help": "score the data with the reference once before training instead of every step"})

    def __post_init__(self):
        super().__post_init__()
        positive(self, "beta")


def is_peft_model(model) -> bool:
    """True when `model` already carries PEFT adapters (a peft.PeftModel)."""
    return isinstance(model, PeftModel)


def trains_adapter(ctx) -> bool:
    """The run trains an adapter: TRL wraps the model (peft_config) or it is wrapped already."""
    return ctx.peft_config is not None or is_peft_model(ctx.model)


def frozen_copy(model):
    """A frozen copy of `model`'s current weights that runs its *own* forward. A TRL trainer
    built on `model` rebinds `model.forward` on the instance (its fused LM head), and that
    wrapper closes over the original model: a deepcopy would keep calling the original. So
    the copy drops any instance-level forward and uses its class's; TRL patches the copy
    itself where it uses it as a reference."""
    ref = copy.deepcopy(model)
    vars(ref).pop("forward", None)
    ref.eval()
    ref.requires_grad_(False)
    return ref


def reference_model(ctx, *, needs_reference: bool = True):
    """The ref_model to hand TRL: None under PEFT (TRL's "ref" adapter or the adapter-
    disabled base) or when the reference log-probs are precomputed under full FT; a
    frozen copy otherwise."""
    if not needs_reference or trains_adapter(ctx):
        return None
    if getattr(ctx.method_config, "precompute_ref_log_probs", False):
        return None
    return frozen_copy(ctx.model)


def common_args(ctx) -> dict:
    """TRL kwargs shared by all preference trainers: the engine's plus eval_on_start."""
    args = ctx.trl_args()
    has_eval = ctx.eval_dataset is not None and len(ctx.eval_dataset) > 0
    args["eval_on_start"] = bool(has_eval and getattr(ctx.method_config, "eval_on_start", False))
    return args


def adapter_reference(model):
    """Context manager that makes a PeftModel compute its reference, as TRL does: the
    "ref" adapter when TRL made one, else the adapter disabled. Yields the model."""
    name = REF_ADAPTER if REF_ADAPTER in getattr(model, "peft_config", {}) else None
    return _yielding(use_adapter(model, adapter_name=name), model)


def adapter_is_identity(model) -> bool:
    """True when a PEFT policy computes bit for bit what its reference (the adapter disabled)
    computes, as at the start of a LoRA run: every tuner layer is plain LoRA (no DoRA or other
    variant, nothing merged) with B = 0 or A = 0, PEFT's default initialisation, so each layer
    returns base(x) + 0; no prompt-learning tokens, no modules_to_save / trainable-token copies, and no
    "ref" adapter standing in for the reference. Anything else (PiSSA and OLoRA move the base
    weights; DoRA renormalises, equal only up to rounding) is not the identity here."""

    def _all_zero(t) -> bool:
        return t is None or not bool(t.any())

    from peft.tuners.lora import LoraLayer
    from peft.tuners.tuners_utils import BaseTunerLayer
    from peft.utils.other import AuxiliaryTrainingWrapper

    if not isinstance(model, PeftModel) or REF_ADAPTER in model.peft_config:
        return False
    if any(c.is_prompt_learning for c in model.peft_config.values()):
        return False
    layers = 0
    for module in model.modules():
        if isinstance(module, AuxiliaryTrainingWrapper):
            return False
        if not isinstance(module, BaseTunerLayer):
            continue
        if not isinstance(module, LoraLayer) or module.merged_adapters:
            return False
        for name in module.active_adapters:
            if getattr(module, "lora_variant", {}).get(name) is not None or module.use_dora.get(name):
                return False
            # B·A·x (+ B's bias) is exactly 0 when either factor is 0: PEFT zeroes B for linear
            # layers and A for embeddings
            if name in module.lora_A:
                a, b = module.lora_A[name], module.lora_B[name]
                zero = _all_zero(b.bias) and (_all_zero(b.weight) or _all_zero(a.weight))
            elif name in module.lora_embedding_A:
                zero = _all_zero(module.lora_embedding_A[name]) or _all_zero(module.lora_embedding_B[name])
            else:
                return False
            if not zero:
                return False
        layers += 1
    return layers > 0


def attach_probes(trainer, ctx, *, reference=None):
    """Give a PreferenceProbeMixin trainer its eval rows, knobs and reference context.
    `reference` is a frozen model to use, else (PEFT) TRL's reference for the policy's
    adapter, else the trainer's ref_model; with none of these the probes skip reference
    values."""
    m = ctx.method_config
    rows = list(ctx.eval_dataset) if ctx.eval_dataset is not None else []
    trainer.probe_rows = rows
    trainer.probe_args = dict(max_pairs=m.probe_pairs, kl_prompts=m.probe_kl_prompts,
                              max_new_tokens=m.probe_max_new_tokens, max_length=ctx.config.max_length)
    ref = reference if reference is not None else getattr(trainer, "ref_model", None)
    # the adapter-disabled base (or TRL's "ref" adapter) is the reference: see adapter_is_identity
    trainer.probe_reference_is_base = trains_adapter(ctx)
    if trains_adapter(ctx):
        trainer.probe_reference = lambda: adapter_reference(trainer.accelerator.unwrap_model(trainer.model))
    elif ref is not None:
        trainer.probe_reference = lambda: contextlib.nullcontext(ref)
    else:
        trainer.probe_reference = None
    return trainer


class TruncationWarning(UserWarning):
    """Preference pairs whose chosen and rejected responses are cut before they differ."""


def first_difference(tokenizer, prompt, chosen, rejected) -> int | None:
    """Index of the first token where prompt+chosen and prompt+rejected differ, tokenised as
    TRL does (None when the two sequences are identical)."""
    from .preference_metrics import encode

    p, c = encode(tokenizer, prompt, chosen)
    q, r = encode(tokenizer, prompt, rejected)
    a, b = p + c, q + r
    for i in range(min(len(a), len(b))):
        if a[i] != b[i]:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def truncation_ties(tokenizer, rows, max_length: int | None) -> tuple[int, int, int | None]:
    """(affected, pairs, suggested max_length) for chosen/rejected rows under TRL's
    keep-start truncation to `max_length` tokens of prompt+response: a pair is affected when
    its two sequences are identical within the first `max_length` tokens, so its DPO margin
    is 0 and its loss stays at log 2. `suggested`: the smallest max_length at which every
    pair that differs at all differs within it (None when no pair differs)."""
    firsts = [first_difference(tokenizer, r["prompt"], r["chosen"], r["rejected"])
              for r in rows if "chosen" in r and "rejected" in r]
    differing = [d for d in firsts if d is not None]
    suggested = max(differing) + 1 if differing else None
    if max_length is None:
        affected = sum(d is None for d in firsts)
    else:
        affected = sum(d is None or d >= max_length for d in firsts)
    return affected, len(firsts), suggested


def check_truncation(ctx) -> int:
    """Before training a pairwise DPO-family objective: count the training pairs that
    `max_length` cuts before chosen and rejected differ. Some: one-line TruncationWarning
    with the count and a max_length that keeps every difference. All: WorkbenchError."""
    max_length = ctx.config.max_length
    affected, total, suggested = truncation_ties(ctx.tokenizer, ctx.train_dataset, max_length)
    if not affected:
        return 0
    fix = (f"max_length={suggested} keeps every pair's first difference" if suggested is not None
           else "chosen and rejected are the same text in every pair")
    text = (f"{affected} of {total} training pairs are identical within max_length={max_length} tokens "
            f"(chosen and rejected cut before they differ: loss stays at log 2, nothing is learned); {fix}")
    if affected == total:
        raise WorkbenchError(f"method {ctx.config.method!r}: all {text}")
    warnings.warn(text, TruncationWarning, stacklevel=2)
    return affected


def check_pair_data(config, method_config, tokenizer, train_dataset) -> None:
    """MethodSpec.check_data of the pairwise methods (DPO family, ORPO, CPO/SimPO, ASFT):
    before the run directory exists, pairs cut before they differ (warn with the count,
    refuse if all)."""
    check_truncation(SimpleNamespace(config=config, tokenizer=tokenizer, train_dataset=train_dataset))


@contextlib.contextmanager
def _yielding(cm, value):
    with cm:
        yield value


def split_list(value, name: str, cast=str) -> list:
    """A knob given as a list or a comma-separated string → list (`sigmoid,sft`)."""
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    out = []
    for item in items:
        item = item.strip() if isinstance(item, str) else item
        if item == "":
            continue
        try:
            out.append(cast(item))
        except (TypeError, ValueError):
            raise WorkbenchError(f"method.{name}: cannot read {item!r} as {cast.__name__}") from None
    return out
