"""Loss-based per-sample reweighting: inside each micro-batch, sample i's mean token loss
ℓ_i gets weight n·softmax(sg(ℓ)/τ)_i, so already-learned (low-loss) samples count less.
Trainer: `ReweightedSFTTrainer`; loss: workbench.methods.losses.sft.reweighted_loss."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ._sft import CommonSFTArgs, check_completion_room, make_trainer, sft_args
from .base import MethodSpec, positive, register
from .losses import sft as losses
from .trainers.logit_sft import LogitSFTTrainer


@dataclass
class LossReweightingArgs(CommonSFTArgs):
    tau: float = field(default=1.0, metadata={
        "help": "softmax temperature τ on per-sample losses; large τ → uniform weights (plain SFT)"})

    def __post_init__(self):  # checked when the config is built, before any run directory
        super().__post_init__()
        positive(self, "tau")


class ReweightedSFTTrainer(LogitSFTTrainer):
    """Per-sample loss reweighting inside each micro-batch."""

    # The loss is a mean over the micro-batch's samples, not a sum over the accumulated
    # batch's tokens, so Trainer must divide it by the accumulation steps itself.
    loss_is_scaled_for_ga = False

    def __init__(self, *args, tau: float, **kw):
        super().__init__(*args, **kw)
        self.tau = tau

    def logit_loss(self, model, model_inputs, logp, token_logp, mask, denom):
        loss, w = losses.reweighted_loss(token_logp, mask, self.tau)
        valid = mask.any(-1)
        with torch.no_grad():
            metrics = {"weight_max": w[valid].max().item() if valid.any() else 0.0,
                       "weight_min": w[valid].min().item() if valid.any() else 0.0,
                       "nll": (-token_logp.sum() / mask.sum().clamp(min=1)).item()}
        return loss, metrics


def build_reweighting_trainer(ctx):
    return make_trainer(ReweightedSFTTrainer, ctx, sft_args(ctx), tau=ctx.method_config.tau)


register(MethodSpec(
    name="loss-reweighting", config_cls=LossReweightingArgs, data_format="prompt_completion",
    summary="per-sample loss reweighting: weights softmax(loss/τ) within each batch (inference)",
    build_trainer=build_reweighting_trainer, family="sft", check_data=check_completion_room))
