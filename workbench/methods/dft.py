"""DFT (Dynamic Fine-Tuning): each response token's cross-entropy is scaled by the token's
own detached probability. The loss is TRL's (`SFTConfig.loss_type="dft"`, trainer: TRL's
`SFTTrainer`); with `track_kl` the same loss is computed from full logits by Anchored
SFT's trainer with λ = 0, so KL to the starting model is logged alongside (for comparing
drift with Anchored SFT)."""
from __future__ import annotations

from dataclasses import dataclass, field

from trl import SFTTrainer

from ._sft import CommonSFTArgs, check_completion_room, frozen_reference, make_trainer, sft_args
from .anchored_sft import KL_DIRECTIONS, AnchoredSFTTrainer
from .base import MethodSpec, register


@dataclass
class DFTArgs(CommonSFTArgs):
    track_kl: bool = field(default=False, metadata={
        "help": "also log KL to the starting model (kl_to_ref); costs one reference forward per step"})
    kl_direction: str = field(default="ref_policy", metadata={
        "help": "which KL track_kl logs: ref_policy = KL(π_ref‖π_θ), policy_ref = KL(π_θ‖π_ref)",
        "choices": KL_DIRECTIONS})


def build_dft_trainer(ctx):
    m = ctx.method_config
    args = sft_args(ctx, loss_type="dft")
    if not m.track_kl:
        return make_trainer(SFTTrainer, ctx, args)
    return make_trainer(AnchoredSFTTrainer, ctx, args, kl_coef=0.0, kl_direction=m.kl_direction,
                        ref_model=frozen_reference(ctx))


register(MethodSpec(
    name="dft", config_cls=DFTArgs, data_format="prompt_completion",
    summary="Dynamic Fine-Tuning: token loss weighted by its detached probability (TRL loss_type=dft)",
    build_trainer=build_dft_trainer, family="sft", check_data=check_completion_room))
