"""Supervised fine-tuning through TRL's SFTTrainer: cross-entropy on the response tokens
(completion-only loss over conversational prompt/completion rows). The trainer is TRL's
own `SFTTrainer`, unchanged."""
from __future__ import annotations

from dataclasses import dataclass, field

from trl import SFTTrainer

from ._sft import CommonSFTArgs, check_completion_room, sft_args
from .base import MethodSpec, register


@dataclass
class SFTArgs(CommonSFTArgs):
    loss_type: str = field(default="nll", metadata={
        "help": "nll = cross-entropy; dft = each token's loss weighted by its detached probability (TRL)",
        "choices": ["nll", "dft"]})
    packing: bool = field(default=False, metadata={"help": "pack several examples into one sequence"})


def build_sft_trainer(ctx):
    m = ctx.method_config
    return ctx.build(SFTTrainer, sft_args(ctx, loss_type=m.loss_type, packing=m.packing))


register(MethodSpec(
    name="sft", config_cls=SFTArgs, data_format="prompt_completion",
    summary="supervised fine-tuning: cross-entropy on response tokens (TRL SFTTrainer)",
    build_trainer=build_sft_trainer, family="sft", check_data=check_completion_room))
