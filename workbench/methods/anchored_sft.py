"""Anchored SFT (ASFT): DFT plus a KL term that keeps the model near its starting point.
The reference is the adapter-disabled model for PEFT runs and a frozen copy for full
fine-tuning; `kl_to_ref` is logged every step. Trainer: `AnchoredSFTTrainer` (also used
by `dft` with track_kl); losses: workbench.methods.losses.sft."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ._preference import adapter_reference
from ._sft import CommonSFTArgs, check_completion_room, frozen_reference, make_trainer, sft_args
from .base import MethodSpec, at_least, register
from .losses import sft as losses
from .trainers.logit_sft import LogitSFTTrainer

KL_DIRECTIONS = ["ref_policy", "policy_ref"]


@dataclass
class AnchoredSFTArgs(CommonSFTArgs):
    kl_coef: float = field(default=0.1, metadata={
        "help": "λ, weight of the KL-to-reference term (the ASFT authors' code default: 0.1)"})
    kl_direction: str = field(default="ref_policy", metadata={
        "help": "ref_policy = KL(π_ref‖π_θ) as in the authors' code; policy_ref = KL(π_θ‖π_ref)",
        "choices": KL_DIRECTIONS})

    def __post_init__(self):  # checked when the config is built, before any run directory
        super().__post_init__()
        at_least(self, 0, "kl_coef")


class AnchoredSFTTrainer(LogitSFTTrainer):
    """DFT + λ·KL to the reference. λ = 0 gives DFT with the KL only measured.
    `ref_model` is a frozen copy (full fine-tuning) or None (PEFT: the policy with its
    adapter disabled, or TRL's "ref" adapter when one exists)."""

    def __init__(self, *args, kl_coef: float, kl_direction: str, ref_model=None, **kw):
        super().__init__(*args, **kw)
        self.kl_coef = kl_coef
        self.kl_direction = kl_direction
        self.ref_model = ref_model.to(self.args.device) if ref_model is not None else None

    @torch.no_grad()
    def reference_log_probs(self, model, model_inputs, labels_len: int):
        if self.ref_model is not None:
            logits = self.ref_model(**model_inputs).logits
        else:
            with adapter_reference(self.accelerator.unwrap_model(model)):
                logits = model(**model_inputs).logits
        logits = logits[:, logits.shape[1] - labels_len:][:, :-1]
        return torch.log_softmax(logits.float(), dim=-1)

    def logit_loss(self, model, model_inputs, logp, token_logp, mask, denom):
        ref_logp = self.reference_log_probs(model, model_inputs, logp.shape[1] + 1)
        kl = losses.token_kl(logp, ref_logp, self.kl_direction)
        dft = losses.dft_loss(token_logp, mask, denom)
        kl_term = losses.masked_mean_sum(kl, mask, denom)
        loss = dft + self.kl_coef * kl_term if self.kl_coef else dft
        with torch.no_grad():  # per-batch means for the records, whatever the accumulation
            n = mask.sum().clamp(min=1)
            metrics = {"kl_to_ref": ((kl * mask).sum() / n).item(),
                       "dft_loss": (-(token_logp.exp() * token_logp).sum() / n).item(),
                       "nll": (-token_logp.sum() / n).item()}
        return loss, metrics


def build_anchored_trainer(ctx):
    m = ctx.method_config
    return make_trainer(AnchoredSFTTrainer, ctx, sft_args(ctx), kl_coef=m.kl_coef,
                        kl_direction=m.kl_direction, ref_model=frozen_reference(ctx))


register(MethodSpec(
    name="anchored-sft", config_cls=AnchoredSFTArgs, data_format="prompt_completion",
    summary="Anchored SFT: DFT + λ·KL to the frozen starting model (logs kl_to_ref)",
    build_trainer=build_anchored_trainer, family="sft", check_data=check_completion_room))
