"""Supervised fine-tuning through TRL's SFTTrainer: cross-entropy on the response tokens
(completion-only loss over conversational prompt/completion rows). The trainer is TRL's
own `SFTTrainer`, unchanged."""
from __future__ import annotations

from dataclasses import dataclass, field

from trl import SFTConfig, SFTTrainer

from .base import MethodArgs, MethodSpec, register


@dataclass
class SFTArgs(MethodArgs):
    loss_type: str = field(default="nll", metadata={
        "help": "nll = cross-entropy; dft = each token's loss weighted by its detached probability (TRL)",
        "choices": ["nll", "dft"]})
    completion_only_loss: bool = field(default=True, metadata={
        "help": "train on the response tokens only (the prompt is context, not target)"})
    packing: bool = field(default=False, metadata={"help": "pack several examples into one sequence"})


def build_sft_trainer(ctx):
    m = ctx.method_config
    args = SFTConfig(**ctx.trl_args(), loss_type=m.loss_type,
                     completion_only_loss=m.completion_only_loss, packing=m.packing)
    return ctx.build(SFTTrainer, args)


register(MethodSpec(
    name="sft", config_cls=SFTArgs, data_format="prompt_completion",
    summary="supervised fine-tuning: cross-entropy on response tokens (TRL SFTTrainer)",
    build_trainer=build_sft_trainer, family="sft"))
